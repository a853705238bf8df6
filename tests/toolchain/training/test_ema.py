"""``ModelEMA``: a frozen copy moved towards the model by the ramped decay; integer buffers left alone."""

from __future__ import annotations

import math

import torch
from torch import nn

from toolchain.quantization.config import QuantConfig
from toolchain.quantization.modules import QuantConv2d
from toolchain.quantization.quantized_model import quantizers
from toolchain.training.ema import ModelEMA


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).double()


def test_the_average_starts_as_a_frozen_copy():
    model = _model().train()
    ema = ModelEMA(model, decay=0.9)
    assert not ema.ema.training and not any(p.requires_grad for p in ema.ema.parameters())
    assert all(a is not b and torch.equal(a, b) for a, b in zip(ema.ema.parameters(), model.parameters()))


def test_an_update_moves_each_float_tensor_by_the_ramped_decay():
    model = _model()
    ema = ModelEMA(model, decay=0.9, updates=10)
    before = {k: v.clone() for k, v in ema.ema.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model[1].num_batches_tracked.fill_(5)
    ema.update(model)
    d = 0.9 * (1 - math.exp(-11 / 2000))
    assert ema.updates == 11
    source = model.state_dict()
    for name, value in ema.ema.state_dict().items():
        if value.dtype.is_floating_point:
            torch.testing.assert_close(value, before[name] * d + source[name] * (1 - d), rtol=1e-15, atol=0)
        else:
            assert torch.equal(value, before[name]), name  # num_batches_tracked stays the copy's


def test_the_average_computes_with_the_quantizers_the_model_has_on():
    cfg = QuantConfig()
    model = nn.Sequential(*(QuantConv2d.from_conv(nn.Conv2d(3, 3, 1), cfg.input, cfg.weight) for _ in range(2)))
    ema = ModelEMA(model, decay=0.9)
    model[1].weight_quantizer.enabled = False  # progressive quantization: a stage not yet due
    ema.update(model)
    assert (
        [q.enabled for q in quantizers(ema.ema)] == [q.enabled for q in quantizers(model)] == [True, True, True, False]
    )
