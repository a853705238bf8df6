"""Fake quantization on torch's own ops, so ``torch.onnx.export`` emits QuantizeLinear/DequantizeLinear.

A ``TensorQuantizer`` holds the range (``amax``, and ``amin`` when asymmetric) of one tensor and
fake-quantizes it: ``scale = amax / qmax`` with ``qmax = 2**(bits-1) - 1`` (127 for int8) over the
integer range ``[-2**(bits-1), qmax]`` (TensorRT's symmetric int8: zero point 0, range [-128, 127]),
or ``uint8`` with a zero point when asymmetric. The gradient is straight-through inside the range
and zero outside it. With ``learn_amax`` the range is a parameter trained with LSQ's gradient scale.

Example:
    >>> q = TensorQuantizer(QuantizerConfig(axis=0))
    >>> with q.calibrating():
    ...     q(weight)
    >>> fake = q(weight)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from toolchain.quantization.calibrators import Calibrator, create_calibrator
from toolchain.quantization.config import QuantizerConfig


class TensorQuantizer(nn.Module):
    """Fake-quantizes one tensor; modes: quantize (default), calibrate, disabled (pass-through).

    Args:
        cfg: Bits, per-tensor or per-channel axis, symmetry, calibrator, LSQ.
    """

    def __init__(self, cfg: QuantizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.enabled = True
        self.calibrator: Calibrator | None = None
        self.register_buffer("amax", None)
        self.register_buffer("amin", None)
        self.learned_amax: nn.Parameter | None = None

    @property
    def qmin(self) -> int:
        return 0 if not self.cfg.symmetric else -(2 ** (self.cfg.num_bits - 1))

    @property
    def qmax(self) -> int:
        return 2**self.cfg.num_bits - 1 if not self.cfg.symmetric else 2 ** (self.cfg.num_bits - 1) - 1

    @property
    def is_calibrated(self) -> bool:
        return self.amax is not None or self.learned_amax is not None

    def extra_repr(self) -> str:
        axis = "per-tensor" if self.cfg.axis is None else f"axis={self.cfg.axis}"
        kind = "sym" if self.cfg.symmetric else "asym"
        state = "disabled" if not self.enabled else ("calibrating" if self.calibrator else "on")
        return f"{self.cfg.num_bits}-bit {kind} {axis} {self.cfg.calibrator} {state}"

    @contextlib.contextmanager
    def calibrating(self) -> Iterator[None]:
        """Collect statistics of what passes through (unchanged), then set the range from them."""
        self.calibrator = create_calibrator(self.cfg)
        try:
            yield
            self.load_calibration()
        finally:
            self.calibrator = None

    def load_calibration(self) -> None:
        """Set ``amax`` (and ``amin``) from the calibrator's statistics."""
        if self.calibrator is None or not self.calibrator.seen:
            return
        amin, amax = self.calibrator.compute_range()
        self.set_range(amax, amin)

    def set_range(self, amax: torch.Tensor, amin: torch.Tensor | None = None) -> None:
        """Fix the range (symmetric: ``[-amax, amax]``; asymmetric: ``[amin, amax]``)."""
        amax = torch.as_tensor(amax, dtype=torch.float32).detach().clone()
        if self.cfg.symmetric:
            amax = amax.abs().clamp_min(1e-8)
        self.amax = amax
        self.amin = None if self.cfg.symmetric else torch.as_tensor(amin, dtype=torch.float32).detach().clone()
        if self.cfg.learn_amax:
            self.learned_amax = nn.Parameter(amax.clone())

    def current_amax(self) -> torch.Tensor:
        """The range in use (the learned one under LSQ)."""
        return self.learned_amax if self.learned_amax is not None else self.amax

    def scale_zero_point(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantization scale (float32) and zero point (int32) for the current range."""
        amax = self.current_amax()
        if self.cfg.symmetric:
            scale = amax.abs().clamp_min(1e-8) / self.qmax
            return scale, torch.zeros_like(scale, dtype=torch.int32)
        amin = torch.minimum(self.amin, torch.zeros_like(self.amin))
        amax = torch.maximum(amax, torch.zeros_like(amax))
        scale = ((amax - amin) / (self.qmax - self.qmin)).clamp_min(1e-8)
        zero_point = (self.qmin - torch.round(amin / scale)).clamp(self.qmin, self.qmax).to(torch.int32)
        return scale, zero_point

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrator is not None:
            self.calibrator.collect(x.detach())
            return x
        if not self.enabled or not self.is_calibrated:
            return x
        if self.learned_amax is not None and self.training and not torch.onnx.is_in_onnx_export():
            return self._learnable(x)
        scale, zero_point = self.scale_zero_point()
        if torch.onnx.is_in_onnx_export():  # constants in the graph, not ops on buffers
            scale, zero_point = torch.tensor(scale.detach().cpu().numpy()), torch.tensor(zero_point.cpu().numpy())
        scale, zero_point = scale.to(x.device), zero_point.to(x.device)
        if self.cfg.axis is None:
            return torch.fake_quantize_per_tensor_affine(x, float(scale), int(zero_point), self.qmin, self.qmax)
        return torch.fake_quantize_per_channel_affine(
            x, scale.reshape(-1), zero_point.reshape(-1), self.cfg.axis, self.qmin, self.qmax
        )

    def _learnable(self, x: torch.Tensor) -> torch.Tensor:
        """LSQ: straight-through estimator with a gradient for the scale, scaled by 1/sqrt(N * qmax)."""
        per_channel = self.cfg.axis is not None
        # an activation counts the whole batch of a torchrun job (toolchain.distributed.model.set_lsq_global_batch)
        numel = x.numel() * getattr(self, "global_batch_factor", 1) / (x.shape[self.cfg.axis] if per_channel else 1)
        grad_factor = 1.0 / math.sqrt(numel * self.qmax)
        scale, zero_point = self.scale_zero_point()
        zero_point = zero_point.float()
        if not per_channel:
            return torch._fake_quantize_learnable_per_tensor_affine(
                x, scale.reshape(1), zero_point.reshape(1), self.qmin, self.qmax, grad_factor
            )
        return torch._fake_quantize_learnable_per_channel_affine(
            x, scale.reshape(-1), zero_point.reshape(-1), self.cfg.axis, self.qmin, self.qmax, grad_factor
        )

    def freeze(self) -> None:
        """Stop learning the range: keep its current value as a fixed buffer."""
        if self.learned_amax is not None:
            self.amax = self.learned_amax.detach().clone()
            self.learned_amax = None
