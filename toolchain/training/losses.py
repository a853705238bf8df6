"""Training losses: YOLOv8's detection loss (ultralytics' own), a weight-quantization penalty,
distillation from the FP32 teacher, and focal loss as an option for the class term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from toolchain.config.fields import FieldError, NonNegativeFloat, check_fields
from toolchain.quantization.modules import QuantConv2d
from toolchain.quantization.quantizer import TensorQuantizer


@dataclass(frozen=True)
class LossConfig:
    """Loss terms and weights.

    Attributes:
        box: Box (CIoU) gain, as ultralytics' box.
        cls: Class gain.
        dfl: Distribution focal loss gain.
        focal_gamma: Focal loss on the class term when > 0 (ultralytics uses plain BCE).
        quant_penalty: Weight of the penalty that pulls weights to their int grid: the mean squared
            distance in quantization steps (about 1/12 after plain rounding; 0: off).
        distill: Weight of the distillation from the FP32 teacher (0: off).
        distill_features: Also match the three head-input feature maps (MSE), not just the head outputs
            (needs distill > 0).
    """

    box: NonNegativeFloat = 7.5
    cls: NonNegativeFloat = 0.5
    dfl: NonNegativeFloat = 1.5
    focal_gamma: NonNegativeFloat = 0.0
    quant_penalty: NonNegativeFloat = 0.0
    distill: NonNegativeFloat = 0.0
    distill_features: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        if self.distill_features and not self.distill:
            raise FieldError("distill_features", "true needs distill > 0 (the weight of the distillation)")


class FocalBCE(nn.Module):
    """Element-wise focal binary cross-entropy on logits (``reduction='none'``, like the BCE it replaces)."""

    def __init__(self, gamma: float = 1.5, alpha: float = 0.25) -> None:
        super().__init__()
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p = logits.sigmoid()
        p_t = target * p + (1 - target) * (1 - p)
        alpha = target * self.alpha + (1 - target) * (1 - self.alpha)
        return bce * alpha * (1 - p_t) ** self.gamma


def detection_criterion(model: nn.Module, cfg: LossConfig):
    """ultralytics' ``v8DetectionLoss`` for ``model`` with our gains (and focal BCE when asked)."""
    from ultralytics.cfg import get_cfg
    from ultralytics.utils.loss import v8DetectionLoss

    model.args = get_cfg(overrides={"box": cfg.box, "cls": cfg.cls, "dfl": cfg.dfl})
    criterion = v8DetectionLoss(model)
    if cfg.focal_gamma > 0:
        criterion.bce = FocalBCE(cfg.focal_gamma)
    return criterion


def _step_size(quantizer: TensorQuantizer, weight: torch.Tensor) -> torch.Tensor:
    """The quantizer's step (scale), detached, shaped to broadcast over ``weight`` (per channel or per tensor)."""
    scale = quantizer.scale_zero_point()[0].detach().to(weight.device)
    if quantizer.cfg.axis is None:
        return scale.reshape(())
    shape = [1] * weight.ndim
    shape[quantizer.cfg.axis] = -1
    return scale.reshape(shape)


def quantization_penalty(model: nn.Module) -> torch.Tensor:
    """Mean over quantized convs (weight quantizer on) of the squared distance, in steps, from each weight
    to its grid point: ``mean(((w - sg(fq(w))) / step)^2)``.

    The grid point is a constant target (``sg``: detached), so the gradient ``2 (w - q) / step^2``
    moves each weight towards its nearest grid point; through the straight-through fake-quant it
    would be zero. Measured in steps, every layer counts alike (a rounding error is about 1/12), and
    the figure is that of the exported weights: folding BatchNorm scales a channel's weights and its
    step by the same factor (``fold_bn``), so the integers, and the distance in steps, do not change.
    """
    terms = []
    for module in model.modules():
        quantizer = getattr(module, "weight_quantizer", None)
        if isinstance(module, QuantConv2d) and quantizer.enabled and quantizer.is_calibrated:
            w = module.weight
            with torch.no_grad():
                target = quantizer(w)
            terms.append(((w - target) / _step_size(quantizer, w)).pow(2).mean())
    return torch.stack(terms).mean() if terms else torch.zeros(())


def distillation_loss(student: dict, teacher: dict, features: bool) -> torch.Tensor:
    """MSE between student and teacher head outputs (class probabilities, box distributions), and features."""
    loss = F.mse_loss(student["scores"].sigmoid(), teacher["scores"].sigmoid())
    b, c, n = student["boxes"].shape
    dist = lambda x: x.view(b, 4, c // 4, n).softmax(2)  # noqa: E731  (per side, over the DFL bins)
    loss = loss + F.mse_loss(dist(student["boxes"]), dist(teacher["boxes"]))
    if features:
        loss = loss + sum(F.mse_loss(s, t) for s, t in zip(student["feats"], teacher["feats"])) / len(student["feats"])
    return loss
