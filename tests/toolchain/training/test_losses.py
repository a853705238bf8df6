from __future__ import annotations

import torch
import torch.nn.functional as F

from toolchain.models.yolo import load_model
from toolchain.quantization.calibration import calibrate, calibration_batches
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.placement import quantize_model
from toolchain.training.losses import FocalBCE, distillation_loss, quantization_penalty


def test_focal_bce_down_weights_easy_examples():
    logits = torch.tensor([4.0, -4.0, 0.1])
    target = torch.tensor([1.0, 0.0, 1.0])
    focal = FocalBCE(gamma=2.0, alpha=0.5)(logits, target)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    assert focal.shape == bce.shape
    assert (focal / bce)[:2].max() < 0.01 and (focal / bce)[2] > 0.1  # easy ones nearly vanish
    torch.testing.assert_close(FocalBCE(gamma=0.0, alpha=0.5)(logits, target), 0.5 * bce)


def test_distillation_is_zero_for_identical_outputs_and_positive_otherwise():
    torch.manual_seed(0)
    out = {"scores": torch.randn(2, 4, 10), "boxes": torch.randn(2, 64, 10), "feats": [torch.randn(2, 8, 4, 4)]}
    assert distillation_loss(out, out, features=True).item() == 0.0
    other = {k: (v + 0.5 if k != "feats" else [f + 0.5 for f in v]) for k, v in out.items()}
    assert distillation_loss(out, other, features=False) < distillation_loss(out, other, features=True)


def test_quantization_penalty(tiny_checkpoint, tiny_dataset):
    model = load_model(tiny_checkpoint)
    assert quantization_penalty(model).item() == 0.0  # no quantizers
    quantize_model(model, QuantConfig())
    calibrate(model, calibration_batches(str(tiny_dataset), 64, 8, 8))
    penalty = quantization_penalty(model)
    assert 0 < penalty.item() < 1e-2  # int8 per-channel weights: a small relative error
