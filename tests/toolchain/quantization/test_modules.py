from __future__ import annotations

import torch
from torch import nn

from toolchain.quantization.config import QuantizerConfig
from toolchain.quantization.modules import QuantConv2d, fold_bn


def _conv_bn() -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, -0.7, 0.2, 2.0, 1.0, -1.2]))
        bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2)
    return conv, bn.eval()


def test_from_conv_and_back_share_parameters():
    conv = nn.Conv2d(3, 4, 3)
    q = QuantConv2d.from_conv(conv, QuantizerConfig(), QuantizerConfig(axis=0))
    assert q.weight is conv.weight and q.bias is conv.bias
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(q(x), conv(x))  # uncalibrated quantizers pass through
    back = q.to_conv()
    assert type(back) is nn.Conv2d and back.weight is conv.weight


def test_fold_bn_matches_conv_then_bn():
    conv, bn = _conv_bn()
    x = torch.randn(2, 3, 8, 8)
    expected = bn(conv(x))
    fold_bn(conv, bn)
    torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)


def test_fold_bn_rescales_the_weight_range_so_integers_do_not_change():
    conv, bn = _conv_bn()
    q = QuantConv2d.from_conv(conv, QuantizerConfig(), QuantizerConfig(axis=0))
    with q.weight_quantizer.calibrating():
        q.weight_quantizer(q.weight)
    scale, _ = q.weight_quantizer.scale_zero_point()
    sign = torch.sign(bn.weight).reshape(-1, 1, 1, 1)  # a negative BN gamma flips the weights
    before = torch.round(q.weight / scale.reshape(-1, 1, 1, 1)) * sign
    fold_bn(q, bn)
    scale, _ = q.weight_quantizer.scale_zero_point()
    after = torch.round(q.weight / scale.reshape(-1, 1, 1, 1))
    torch.testing.assert_close(after, before)
    torch.testing.assert_close(q.weight_quantizer.amax, q.weight.detach().abs().amax(dim=(1, 2, 3)))
