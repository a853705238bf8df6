"""Post-training quantization: the one PTQ flow (quantize a copy, calibrate it on training images,
export the FP32 and INT8 QDQ ONNX and the calibrated checkpoint), and the calibration tools under it.

``toolchain ptq``, the start of QAT, sensitivity analysis and ``benchmarks/qat_epoch.py`` all call
``ptq``.

Example:
    >>> model, imgsz = load_model_at("best.pt")
    >>> student, placement = ptq(model, QuantConfig(), calibration_batches("data.yaml", imgsz, 256))
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from base.dataset import list_images, load_data_yaml
from base.errors import ToolchainError
from deploy.preprocess import preprocess
from toolchain.quantization.modules import QuantConv2d, fold_bn
from toolchain.quantization.quantizer import TensorQuantizer

if TYPE_CHECKING:
    from toolchain.export.onnx import ExportConfig
    from toolchain.quantization.config import QuantConfig
    from toolchain.quantization.placement import PlacementReport

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PTQOutputs:
    """What ``ptq`` writes; ``None`` paths are skipped.

    Attributes:
        int8_onnx: The QDQ ONNX.
        export: Its export settings (also those of the FP32 ONNX).
        fp32_onnx: The FP32 ONNX of the model before quantization.
        checkpoint: The calibrated fake-quant model (``.pt``), for parity checks and QAT.
        source: The checkpoint the model came from (recorded in the sidecars).
        config: The resolved config of the command (recorded in sidecars and checkpoint).
    """

    int8_onnx: Path | None
    export: ExportConfig
    fp32_onnx: Path | None = None
    checkpoint: Path | None = None
    source: str = ""
    config: dict | None = None


def ptq(
    model: nn.Module, quant: QuantConfig, batches: list[np.ndarray], device: str = "cpu",
    outputs: PTQOutputs | None = None,
) -> tuple[nn.Module, PlacementReport]:  # fmt: skip
    """Quantize a copy of ``model``, calibrate it on ``batches``, and write ``outputs``.

    Args:
        model: The FP32 model; it is not modified (QAT keeps it as the teacher).
        quant: Placement and calibrator settings.
        batches: Calibration batches (``calibration_batches``), at the size of the exports.
        device: Where calibration runs.
        outputs: The files to write, or ``None``.

    Returns:
        The calibrated fake-quant model and the placement report.
    """
    from toolchain.export.onnx import onnx_from_model
    from toolchain.models.checkpoint import save_checkpoint
    from toolchain.quantization.placement import quantize_model

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
    if outputs is None:
        return student, placement
    o = outputs
    if o.fp32_onnx:
        onnx_from_model(model, o.fp32_onnx, o.export, source=o.source, config=o.config)
    if o.int8_onnx:
        meta = {**quant.to_dict(), "placement": placement.summary()}
        onnx_from_model(student, o.int8_onnx, o.export, "int8", o.source, meta, o.config)
    if o.checkpoint:
        save_checkpoint(o.checkpoint, student.cpu(), o.export.imgsz, o.config, quant_config=quant.to_dict())
    return student, placement


def quantizers(model: nn.Module) -> list[TensorQuantizer]:
    """Every distinct quantizer of the model (a shared one once)."""
    return list({id(m): m for m in model.modules() if isinstance(m, TensorQuantizer)}.values())


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


def set_quantizers_enabled(model: nn.Module, enabled: bool) -> None:
    """Turn fake quantization on or off everywhere (off: the model computes in float)."""
    for q in quantizers(model):
        q.enabled = enabled


@contextlib.contextmanager
def quantization_disabled(model: nn.Module) -> Iterator[None]:
    """Compute in float inside the block."""
    states = [(q, q.enabled) for q in quantizers(model)]
    set_quantizers_enabled(model, False)
    try:
        yield
    finally:
        for q, state in states:
            q.enabled = state


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every ultralytics ``Conv`` block's BatchNorm into its (quantized) conv, in place.

    Per-channel weight ranges are rescaled with the weights. Returns how many were folded.
    """
    folded = 0
    for module in model.modules():
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and hasattr(module, "forward_fuse"):
            fold_bn(conv, bn)
            delattr(module, "bn")
            module.forward = module.forward_fuse
            folded += 1
    return folded


def is_quantized(model: nn.Module) -> bool:
    """Whether the model has any quantized conv."""
    return any(isinstance(m, QuantConv2d) for m in model.modules())
