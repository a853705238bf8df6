from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from toolchain.models.yolo import load_model
from toolchain.quantization.calibration import calibrate, calibration_batches
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.modules import QuantConv2d
from toolchain.quantization.placement import quantize_model
from toolchain.quantization.quantized_model import fold_batchnorm
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
    assert 0 < penalty.item() < 0.5  # within half a step of the grid: at most 1/4 per weight


def _calibrated_conv(seed: int = 0) -> QuantConv2d:
    torch.manual_seed(seed)
    conv = QuantConv2d.from_conv(torch.nn.Conv2d(8, 16, 3), QuantConfig().input, QuantConfig().weight)
    with conv.weight_quantizer.calibrating():
        conv.weight_quantizer(conv.weight)
    return conv


def _steps_off_grid(conv: QuantConv2d) -> torch.Tensor:
    """Each weight's distance to its grid point, in steps of its channel."""
    with torch.no_grad():
        step = conv.weight_quantizer.scale_zero_point()[0].reshape(-1, 1, 1, 1)
        return (conv.weight - conv.weight_quantizer(conv.weight)).abs() / step


def test_the_penalty_gradient_points_every_weight_to_its_grid_point():
    conv = _calibrated_conv()
    quantization_penalty(conv).backward()
    with torch.no_grad():
        towards = conv.weight_quantizer(conv.weight) - conv.weight  # where the nearest grid point lies
    off = _steps_off_grid(conv) > 1e-3  # weights on a grid point (the channel's max) have nowhere to go
    assert off.float().mean() > 0.9
    assert torch.equal(torch.sign(-conv.weight.grad)[off], torch.sign(towards)[off])


def test_one_sgd_step_on_the_penalty_brings_the_weights_closer_to_the_grid():
    conv = _calibrated_conv()
    before = _steps_off_grid(conv).mean()
    step = conv.weight_quantizer.scale_zero_point()[0].min().item()
    # gradient 2 (w - q) / (step^2 N): this rate moves the finest channel's weights half way to their grid point
    sgd = torch.optim.SGD([conv.weight], lr=0.25 * conv.weight.numel() * step**2)
    quantization_penalty(conv).backward()
    sgd.step()
    assert _steps_off_grid(conv).mean() < 0.7 * before


def test_the_penalty_is_measured_in_steps_and_blind_to_batchnorm_folding(tiny_checkpoint, tiny_dataset):
    model = load_model(tiny_checkpoint)
    quantize_model(model, QuantConfig())
    calibrate(model, calibration_batches(str(tiny_dataset), 64, 8, 8))
    for m in model.modules():  # BatchNorm of a trained model: a scale per channel, some of them negative
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(-2, 2)
            m.running_var.uniform_(0.5, 4)
    model.eval()
    penalty = quantization_penalty(model)
    assert 1 / 12 * 0.8 < penalty.item() < 1 / 12 * 1.2  # rounding to the nearest step: uniform over half a step
    folded = copy.deepcopy(model)
    assert fold_batchnorm(folded) > 0
    torch.testing.assert_close(quantization_penalty(folded), penalty, rtol=1e-3, atol=0)  # what is exported
