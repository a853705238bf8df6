"""Quantization-aware training: the generic trainer on a PTQ-calibrated model, with BatchNorm and
quantizer-range freezing, distillation from the FP32 teacher, and conversion to the export form.

Example:
    >>> trainer = create_trainer(model, QATConfig(train=TrainConfig(data="data.yaml", imgsz=384)), teacher)
    >>> trainer.fit()
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from deploy.errors import ToolchainError
from toolchain.quantization.ptq import fold_batchnorm, quantizers
from toolchain.training.losses import distillation_loss, quantization_penalty
from toolchain.training.trainer import Callback, TrainConfig, Trainer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QATConfig:
    """QAT on top of a training config.

    Attributes:
        train: The optimizer, schedule, data and loss settings.
        freeze_bn_epoch: From this epoch on, BatchNorm statistics stop updating (-1: never).
        freeze_quant_epoch: From this epoch on, learned quantizer ranges stop changing (-1: never).
        progressive: Start epoch to module-name regex, enabling quantizers stage by stage (empty: all at once).
    """

    train: TrainConfig
    freeze_bn_epoch: int = 0
    freeze_quant_epoch: int = -1
    progressive: dict = field(default_factory=dict)


def _freeze_batchnorm(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


class QATTrainer(Trainer):
    """``Trainer`` for a model with quantizers (prepared by ``quantize_model`` and calibrated)."""

    def __init__(
        self, model: nn.Module, cfg: QATConfig, teacher: nn.Module | None = None,
        callbacks: list[Callback] | None = None,
    ) -> None:  # fmt: skip
        if not quantizers(model):
            raise ToolchainError("QAT: the model has no quantizers; run quantize_model() and calibrate() first")
        super().__init__(model, cfg.train, callbacks)
        self.qat = cfg
        loss = cfg.train.loss
        self.teacher = teacher.to(self.device).eval().requires_grad_(False) if teacher is not None else None
        if loss.distill > 0 and self.teacher is None:
            raise ToolchainError("QAT: distill > 0 needs the FP32 teacher model")

    def prepare_epoch(self, epoch: int) -> None:
        super().prepare_epoch(epoch)
        if 0 <= self.qat.freeze_bn_epoch <= epoch:
            _freeze_batchnorm(self.model)
        if 0 <= self.qat.freeze_quant_epoch <= epoch:
            for q in quantizers(self.model):
                q.freeze()

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        preds = self.model(batch["img"])
        loss, items = self.criterion(preds, batch)
        total = loss.sum()
        out = {k: float(v) for k, v in items.items()}
        lc = self.cfg.loss
        if lc.quant_penalty > 0:
            penalty = quantization_penalty(self.model) * lc.quant_penalty * batch["img"].shape[0]
            total, out["quant_penalty"] = total + penalty, float(penalty)
        if lc.distill > 0:
            with torch.no_grad():
                teacher = self.teacher(batch["img"])
            teacher = teacher[1] if isinstance(teacher, tuple) else teacher
            distill = distillation_loss(preds, teacher, lc.distill_features) * lc.distill * batch["img"].shape[0]
            total, out["distill"] = total + distill, float(distill)
        return total, out


def export_form(model: nn.Module) -> nn.Module:
    """A copy ready for export: quantizer ranges fixed, BatchNorm folded into the quantized convs."""
    model = copy.deepcopy(model).eval()
    for q in quantizers(model):
        q.freeze()
    fold_batchnorm(model)
    return model


def create_trainer(
    model: nn.Module, cfg: TrainConfig | QATConfig, teacher: nn.Module | None = None,
    callbacks: list[Callback] | None = None,
) -> Trainer:  # fmt: skip
    """A ``QATTrainer`` for a ``QATConfig``, a plain ``Trainer`` for a ``TrainConfig``."""
    if isinstance(cfg, QATConfig):
        return QATTrainer(model, cfg, teacher, callbacks)
    return Trainer(model, cfg, callbacks)
