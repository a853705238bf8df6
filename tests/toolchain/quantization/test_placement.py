from __future__ import annotations

import numpy as np
import torch
from ultralytics.nn.modules.block import Bottleneck

from toolchain.models.yolo import load_model
from toolchain.quantization.calibration import calibrate
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.modules import QuantConv2d
from toolchain.quantization.placement import QuantBottleneck, float_copy, placement_of, quantize_model
from toolchain.quantization.quantized_model import quantization_disabled, quantizers


def _input_quantizer(model, name: str):
    return model.get_submodule(name).input_quantizer


def test_yolov8n_placement(tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    report = quantize_model(model, QuantConfig())
    assert len(report.quantized) == 57 and len(report.skipped) == 7
    assert sorted(report.skipped)[-1] == "model.22.dfl.conv"
    assert all(not isinstance(model.get_submodule(n), QuantConv2d) for n in report.skipped)
    q = lambda name: _input_quantizer(model, name)  # noqa: E731
    # C2f: cv2's concat, every bottleneck input and both sides of the residual Add share one object
    assert q("model.2.cv2.conv") is q("model.2.m.0.cv1.conv")
    bottleneck = model.get_submodule("model.2.m.0")
    assert isinstance(bottleneck, QuantBottleneck) and bottleneck.residual_quantizer is q("model.2.cv2.conv")
    # a backbone output read by a conv and, through a Concat, by the neck: one quantizer
    assert q("model.6.cv1.conv") is not q("model.7.conv")
    assert q("model.7.conv") is q("model.12.cv1.conv") is q("model.21.cv1.conv")
    assert q("model.5.conv") is q("model.15.cv1.conv") is q("model.18.cv1.conv")
    # the head's two branches read one tensor with one scale
    assert q("model.22.cv2.0.0.conv") is q("model.22.cv3.0.0.conv") is q("model.16.conv")
    # weights are per-channel on axis 0, inputs per-tensor
    conv = model.get_submodule("model.0.conv")
    assert conv.weight_quantizer.cfg.axis == 0 and conv.input_quantizer.cfg.axis is None


def test_head_tail_and_overrides(tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    cfg = QuantConfig.from_dict(
        {"quantize_head_tail": True, "overrides": [{"pattern": r"model\.0\.conv", "skip": True}]}
    )
    report = quantize_model(model, cfg)
    assert "model.0.conv" in report.skipped and "model.22.cv2.0.2" in report.quantized
    assert report.skipped.count("model.22.dfl.conv") == 1  # the DFL conv always stays float


def test_quantized_model_still_runs_in_train_and_eval(tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    quantize_model(model, QuantConfig())
    model.eval()
    y = model(torch.zeros(1, 3, 64, 64))
    assert y[0].shape == (1, 14, 84)
    model.train()
    assert set(model(torch.zeros(2, 3, 64, 64))) >= {"boxes", "scores"}


def test_placement_of_a_quantized_model_and_its_float_copy(tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    placed = quantize_model(model, QuantConfig.from_dict({"overrides": [{"pattern": r"model\.1\.conv", "skip": True}]}))
    calibrate(model, [np.random.default_rng(0).random((2, 3, 64, 64), np.float32)])
    read = placement_of(model)
    assert (sorted(read.quantized), sorted(read.skipped)) == (sorted(placed.quantized), sorted(placed.skipped))
    assert read.summary() == placed.summary()
    copy = float_copy(model)
    assert not quantizers(copy) and placement_of(copy).quantized == [] and len(placement_of(copy).skipped) == 64
    assert type(copy.get_submodule("model.2.m.0")) is Bottleneck
    assert isinstance(model.get_submodule("model.2.m.0"), QuantBottleneck)  # the original is kept
    assert quantizers(model) and isinstance(model.get_submodule("model.0.conv"), QuantConv2d)
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad(), quantization_disabled(model):
        torch.testing.assert_close(copy(images)[0], model(images)[0], rtol=0, atol=0)
