"""Walks and in-place edits of a fake-quant model: its quantizers, whether it is quantized, fake quantization
on and off, and BatchNorm folded into its quantized convs.

Example:
    >>> with quantization_disabled(model):
    ...     float_out = model(images)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

from toolchain.quantization.modules import QuantConv2d, fold_bn
from toolchain.quantization.quantizer import TensorQuantizer


def quantizers(model: nn.Module) -> list[TensorQuantizer]:
    """Every distinct quantizer of the model (a shared one once)."""
    return list({id(m): m for m in model.modules() if isinstance(m, TensorQuantizer)}.values())


def is_quantized(model: nn.Module) -> bool:
    """Whether the model has any quantized conv."""
    return any(isinstance(m, QuantConv2d) for m in model.modules())


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
