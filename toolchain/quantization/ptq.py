"""Post-training quantization: prepare a YOLOv8 model and calibrate its quantizers on training images.

Example:
    >>> model = load_model("best.pt")
    >>> report = quantize_model(model, QuantConfig())
    >>> calibrate(model, calibration_batches("data.yaml", imgsz=384, num_images=256))
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from deploy.dataset import list_images, load_data_yaml
from deploy.errors import ToolchainError
from deploy.preprocess import preprocess
from toolchain.quantization.modules import QuantConv2d, fold_bn
from toolchain.quantization.quantizer import TensorQuantizer

logger = logging.getLogger(__name__)


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
    batches = []
    for start in range(0, len(chosen), batch):
        pixels = [cv2.imread(str(p)) for p in chosen[start : start + batch]]
        pixels = [p for p in pixels if p is not None]
        if pixels:
            batches.append(preprocess(pixels, (imgsz, imgsz))[0])
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
