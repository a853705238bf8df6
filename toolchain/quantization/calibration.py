"""Post-training calibration: batches of training images, a model's quantizers calibrated on them, the
quant preset resolved on them (``toolchain.quantization.presets``), and the PTQ stage (a quantized,
calibrated copy of an FP32 model). No file is written here: ``toolchain.jobs.ptq`` writes the ONNX and
checkpoints.

Example:
    >>> batches = calibration_batches("data.yaml", 384, 256)
    >>> quant = resolve_preset(model, QuantConfig(preset="sensitive"), batches)  # skip overrides, preset default
    >>> student, placement = calibrated_model(model, quant, batches)
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Iterable

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from base.dataset import list_images, load_data_yaml
from base.errors import ToolchainError
from deploy.preprocess import preprocess
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.modules import QuantConv2d
from toolchain.quantization.placement import PlacementReport, quantize_model
from toolchain.quantization.presets import preset_base, ranking_batches, sensitive_config
from toolchain.quantization.quantized_model import is_quantized, quantizers
from toolchain.quantization.sensitivity import group_sqnr

logger = logging.getLogger(__name__)


def calibrated_model(
    model: nn.Module, quant: QuantConfig, batches: list[np.ndarray], device: str = "cpu"
) -> tuple[nn.Module, PlacementReport]:
    """Quantize a copy of ``model`` and calibrate it on ``batches`` (PTQ).

    Args:
        model: The FP32 model; it is not modified (QAT keeps it as the teacher).
        quant: Placement and calibrator settings; a preset is resolved first (``resolve_preset``: call it
            before to record the resolved config).
        batches: Calibration batches (``calibration_batches``), at the size of the exports.
        device: Where calibration runs.

    Returns:
        The calibrated fake-quant model and the placement report.

    Raises:
        ToolchainError: The model is quantized already, the overrides skip every conv, or no quantizer saw a
            calibration image.
    """
    if is_quantized(model):
        convs = sum(isinstance(m, QuantConv2d) for m in model.modules())
        raise ToolchainError(
            f"PTQ: the model is quantized already ({convs} quantized convs: a ptq or qat checkpoint), and PTQ "
            "calibrates FP32 weights; start from the FP32 .pt, or train this one further with 'toolchain qat --weights'"
        )
    quant = resolve_preset(model, quant, batches, device)
    student = copy.deepcopy(model)
    placement = quantize_model(student, quant)
    if not placement.quantized:
        raise ToolchainError(
            f"quant.overrides: skip every one of the {len(placement.skipped)} convs, so nothing would be quantized; "
            "an INT8 model needs at least one quantized conv: narrow the skip patterns"
        )
    calibrate(student, batches, device)
    if not any(q.is_calibrated for q in quantizers(student)):
        raise ToolchainError("PTQ: no quantizer saw a calibration image, so nothing would be quantized")
    return student, placement


def resolve_preset(model: nn.Module, quant: QuantConfig, batches: list[np.ndarray], device: str = "cpu") -> QuantConfig:
    """``quant`` with its preset turned into skip overrides and preset ``default`` (unchanged when it is
    ``default`` already), so a config written with it reproduces the placement without ranking again.

    ``sensitive``: a copy of ``model`` is quantized with the first conv float, calibrated on the first
    calibration images (``presets.ranking_batches``), and its fusion groups ranked by the head's SQNR with
    each quantized alone (``sensitivity.group_sqnr``); the ``quant.sensitive_keep`` lowest stay float too.

    Raises:
        ToolchainError: ``sensitive_keep`` leaves nothing quantized (or as ``calibrated_model``).
    """
    if quant.preset == "default":
        return quant
    start = time.perf_counter()
    base, batches = preset_base(quant), ranking_batches(batches)
    logger.info("quant.preset %s: ranking fusion groups on %d images", quant.preset, sum(len(b) for b in batches))
    student, _ = calibrated_model(model, base, batches, device)
    resolved = sensitive_config(base, group_sqnr(student, batches, device), quant.sensitive_keep)
    logger.info("Finished the quant.preset ranking in %.1f s", time.perf_counter() - start)
    return resolved


def calibration_batches(
    data: str, imgsz: int, num_images: int = 256, batch: int = 16, split: str = "train", seed: int = 0
) -> list[np.ndarray]:
    """Letterboxed NCHW float32 batches of ``num_images`` images drawn at random from a split.

    The same preprocessing as deployment (``deploy.preprocess``), so ranges match what engines see.
    """
    spec = load_data_yaml(data)
    if split not in spec.splits:
        raise ToolchainError(f"{data}: no '{split}' split to calibrate on")
    images = list_images(spec.splits[split])
    if not images:
        raise ToolchainError(f"{data}: the '{split}' split has no images to calibrate on")
    rng = np.random.default_rng(seed)
    chosen = [images[i] for i in rng.permutation(len(images))[:num_images]]
    batches, unreadable = [], []
    for start in range(0, len(chosen), batch):
        pixels = [(p, cv2.imread(str(p))) for p in chosen[start : start + batch]]
        unreadable += [p for p, image in pixels if image is None]
        if any(image is not None for _, image in pixels):
            batches.append(preprocess([image for _, image in pixels if image is not None], (imgsz, imgsz))[0])
    if not batches:
        raise ToolchainError(
            f"{data}: none of the {len(chosen)} '{split}' images chosen to calibrate can be decoded "
            f"(e.g. {unreadable[0]}); fix or replace them"
        )
    if unreadable:
        logger.warning("%d of %d calibration images cannot be decoded and are skipped, e.g. %s",
                       len(unreadable), len(chosen), unreadable[0])  # fmt: skip
    return batches


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[np.ndarray], device: str = "cpu") -> None:
    """Run the batches through the model with every quantizer collecting statistics, then set ranges.

    Quantizers see float values during calibration (each is a pass-through until its range is set).
    """
    model.eval().to(device)
    batches = list(batches)
    qs = quantizers(model)
    start = time.perf_counter()
    logger.info("Calibrating %d quantizers on %d batches", len(qs), len(batches))
    with contextlib.ExitStack() as stack:
        for q in qs:
            stack.enter_context(q.calibrating())
        for batch in tqdm(batches, desc="calibrate", unit="batch"):
            model(torch.from_numpy(batch).to(device))
        tqdm.write("computing ranges...")
    missing = [q for q in qs if not q.is_calibrated and q.enabled]
    if missing:
        logger.warning("%d quantizers saw no data and stay pass-through", len(missing))
    logger.info("Finished calibration in %.1f s", time.perf_counter() - start)
