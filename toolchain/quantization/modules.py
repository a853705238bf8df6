"""Quantized modules: ``QuantConv2d`` (input and weight quantizers) and BatchNorm folding.

Example:
    >>> qconv = QuantConv2d.from_conv(conv, input_cfg, weight_cfg)
    >>> conv_again = qconv.to_conv()
"""

from __future__ import annotations

import torch
from torch import nn

from toolchain.quantization.config import QuantizerConfig
from toolchain.quantization.quantizer import TensorQuantizer


def _conv_kwargs(conv: nn.Conv2d) -> dict:
    """Constructor arguments that rebuild ``conv``'s shape on its device and dtype."""
    return dict(
        in_channels=conv.in_channels, out_channels=conv.out_channels, kernel_size=conv.kernel_size,
        stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
        bias=conv.bias is not None, padding_mode=conv.padding_mode, device=conv.weight.device, dtype=conv.weight.dtype,
    )  # fmt: skip


class QuantConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose input (per-tensor) and weight (per-channel) are fake-quantized.

    The input quantizer may be shared with other modules (one object), which is how placement
    rules give tensors one scale.
    """

    input_quantizer: TensorQuantizer
    weight_quantizer: TensorQuantizer

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, input_cfg: QuantizerConfig, weight_cfg: QuantizerConfig) -> QuantConv2d:
        """A quantized copy of ``conv`` sharing its parameters (not calibrated yet)."""
        q = cls(**_conv_kwargs(conv))
        q.weight = conv.weight
        q.bias = conv.bias
        q.input_quantizer = TensorQuantizer(input_cfg)
        q.weight_quantizer = TensorQuantizer(weight_cfg)
        return q

    def to_conv(self) -> nn.Conv2d:
        """The float conv with the same parameters (quantizers dropped)."""
        conv = nn.Conv2d(**_conv_kwargs(self))
        conv.weight = self.weight
        conv.bias = self.bias
        return conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.input_quantizer(x), self.weight_quantizer(self.weight), self.bias)


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold eval-mode BatchNorm into ``conv`` in place (weight and bias).

    For a ``QuantConv2d`` with a calibrated per-channel weight range, the range is rescaled by the
    same per-channel factor, so the integer weights do not change.
    """
    with torch.no_grad():
        factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.weight.copy_(conv.weight * factor.reshape(-1, 1, 1, 1))
        new_bias = (bias - bn.running_mean) * factor + bn.bias
        if conv.bias is None:
            conv.bias = nn.Parameter(new_bias)
        else:
            conv.bias.copy_(new_bias)
        quantizer = getattr(conv, "weight_quantizer", None)
        if quantizer is not None and quantizer.is_calibrated:
            if quantizer.cfg.axis != 0:
                raise ValueError("folding BN needs per-channel weight ranges on axis 0")
            scaled = quantizer.current_amax().detach().reshape(-1) * factor.abs()
            quantizer.set_range(scaled.reshape(quantizer.amax.shape))
