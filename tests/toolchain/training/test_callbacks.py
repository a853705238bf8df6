from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from base.errors import ToolchainError
from toolchain.models.yolo import load_model
from toolchain.quantization.calibration import calibrate
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.modules import QuantConv2d
from toolchain.quantization.placement import quantize_model
from toolchain.training.callbacks import EarlyStopping, ProgressiveQuantization, TensorBoardLogger, sqnr_per_layer


def test_progressive_quantization_by_stage(tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    quantize_model(model, QuantConfig())
    trainer = SimpleNamespace(model=model)
    cb = ProgressiveQuantization({0: r"model\.[0-9]\.", 2: r"model\.22\."})
    cb.on_epoch_start(trainer, 0)
    conv = model.get_submodule
    assert conv("model.3.conv").weight_quantizer.enabled and conv("model.3.conv").input_quantizer.enabled
    assert not conv("model.22.cv2.0.1.conv").weight_quantizer.enabled
    assert not conv("model.22.cv2.0.1.conv").input_quantizer.enabled
    # model.7 is due, so the quantizer it shares with model.12 and model.21 is on; their weights are not
    assert conv("model.12.cv1.conv").input_quantizer.enabled and not conv("model.12.cv1.conv").weight_quantizer.enabled
    cb.on_epoch_start(trainer, 2)
    assert conv("model.22.cv2.0.1.conv").weight_quantizer.enabled
    assert not conv("model.15.cv1.conv").weight_quantizer.enabled


def test_early_stopping():
    float_model = torch.nn.Identity()
    trainer = SimpleNamespace(stop=False, model=float_model, eval_model=float_model)
    cb = EarlyStopping(patience=2)
    for epoch, m in enumerate([0.5, 0.6, 0.6, 0.59]):
        cb.on_epoch_end(trainer, epoch, {"map50_95": m})
    assert trainer.stop


def _two_quantized_convs() -> torch.nn.Sequential:
    cfg = QuantConfig()
    return torch.nn.Sequential(*(QuantConv2d.from_conv(torch.nn.Conv2d(3, 3, 1), cfg.input, cfg.weight) for _ in "ab"))


def test_early_stopping_counts_the_fully_quantized_epochs_only():
    model = _two_quantized_convs()
    trainer = SimpleNamespace(stop=False, model=model, eval_model=model)
    cb = EarlyStopping(patience=2)
    model[1].weight_quantizer.enabled = False  # a stage not yet due: float mAP, not one to beat
    cb.on_epoch_end(trainer, 0, {"map50_95": 0.9})
    model[1].weight_quantizer.enabled = True
    for epoch, m in enumerate([0.5, 0.6, 0.7], start=1):
        cb.on_epoch_end(trainer, epoch, {"map50_95": m})
    assert not trainer.stop and cb.best == 0.7


def test_progressive_stages_must_quantize_every_conv_in_the_end():
    trainer = SimpleNamespace(model=_two_quantized_convs())
    with pytest.raises(ToolchainError, match=r"qat.progressive: no stage matches 1 quantized conv\(s\), e.g. 1;"):
        ProgressiveQuantization({0: "0"}).on_fit_start(trainer)
    ProgressiveQuantization({0: "0", 2: ".*"}).on_fit_start(trainer)


def test_sqnr_and_tensorboard(tmp_path, tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    quantize_model(model, QuantConfig())
    batch = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    calibrate(model, [batch])
    sqnr = sqnr_per_layer(model, torch.from_numpy(batch))
    assert len(sqnr) == 57 and all(np.isfinite(v) for v in sqnr.values())
    assert sqnr["model.0.conv"] > 30  # the first layer sees no upstream error: int8 alone is ~40 dB
    trainer = SimpleNamespace(sqnr=sqnr)
    tb = TensorBoardLogger(tmp_path)
    tb.on_fit_start(trainer)
    tb.on_epoch_end(trainer, 0, {"epoch": 1, "box_loss": 1.0, "map50_95": 0.5, "lr": 0.01})
    tb.on_fit_end(trainer)
    assert list(tmp_path.glob("events.out.tfevents.*"))
