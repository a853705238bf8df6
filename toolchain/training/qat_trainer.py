"""Quantization-aware training: the generic trainer on a PTQ-calibrated model, with BatchNorm and
quantizer-range freezing, and distillation from the FP32 teacher.

Example:
    >>> trainer = QATTrainer(model, TrainConfig(data="data.yaml", imgsz=384), QATConfig(), teacher)
    >>> trainer.fit()
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from base.errors import ToolchainError
from toolchain.config.fields import EpochOrNever, NonNegativeInt, Pattern, check_fields
from toolchain.distributed.config import DistributedConfig
from toolchain.distributed.model import ddp_options
from toolchain.distributed.process import DistributedContext
from toolchain.quantization.quantized_model import quantizers
from toolchain.training.config import TrainConfig
from toolchain.training.losses import distillation_loss, quantization_penalty
from toolchain.training.trainer import Callback, Trainer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QATConfig:
    """What QAT adds to training.

    Attributes:
        freeze_bn_epoch: From this epoch on, BatchNorm statistics stop updating (-1: never).
        freeze_quant_epoch: From this epoch on, learned quantizer ranges stop changing (-1: never).
        progressive: Start epoch to module-name regex, enabling quantizers stage by stage (empty: all at
            once), e.g. {0: 'model\\.[0-9]\\.', 1: 'model\\.(1[0-9]|2[0-1])\\.', 2: 'model\\.22\\.'}.
    """

    freeze_bn_epoch: EpochOrNever = 0
    freeze_quant_epoch: EpochOrNever = -1
    progressive: dict[NonNegativeInt, Pattern] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_fields(self)


def _freeze_batchnorm(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


class QATTrainer(Trainer):
    """``Trainer`` for a model with quantizers (prepared by ``quantize_model`` and calibrated).

    Args:
        model: The calibrated fake-quant model.
        cfg: Training settings.
        qat: Freezing settings (progressive quantization is a callback, see ``toolchain.jobs.qat``).
        teacher: The FP32 model, needed when ``cfg.loss.distill > 0`` (each rank runs it on its shard).
        callbacks: Called at fit and epoch boundaries.
        dist: This process's place in a torchrun job (``None``: one process).
        distributed: The job's lr scaling rule and loss normalisation.
    """

    def __init__(
        self, model: nn.Module, cfg: TrainConfig, qat: QATConfig, teacher: nn.Module | None = None,
        callbacks: list[Callback] | None = None, dist: DistributedContext | None = None,
        distributed: DistributedConfig | None = None,
    ) -> None:  # fmt: skip
        if not quantizers(model):
            raise ToolchainError("QAT: the model has no quantizers; run quantize_model() and calibrate() first")
        super().__init__(model, cfg, callbacks, dist, distributed)
        self.qat = qat
        self.teacher = teacher.to(self.device).eval().requires_grad_(False) if teacher is not None else None
        if cfg.loss.distill > 0 and self.teacher is None:
            raise ToolchainError("QAT: distill > 0 needs the FP32 teacher model")

    def ddp_options(self) -> dict:
        """Buffers broadcast only while BatchNorm statistics update; unused parameters looked for only
        when an LSQ range can go without a gradient (its quantizer off, or frozen mid-run)."""
        schedule = self.cfg.schedule
        starts_off = bool(self.qat.progressive) or (schedule.name == "qat" and schedule.pre_quant > 0)
        return ddp_options(self.model, self.qat.freeze_bn_epoch, self.qat.freeze_quant_epoch, starts_off)

    def prepare_epoch(self, epoch: int) -> None:
        """Training mode, then on every rank alike: BatchNorm frozen, ranges fixed, as the schedule says."""
        super().prepare_epoch(epoch)
        if 0 <= self.qat.freeze_bn_epoch <= epoch:
            _freeze_batchnorm(self.model)
        if 0 <= self.qat.freeze_quant_epoch <= epoch:
            for q in quantizers(self.model):
                q.freeze()
            self._forget_frozen_ranges()

    def _forget_frozen_ranges(self) -> None:
        """Take the learned ranges that freezing turned into buffers out of the optimizer, so that the
        optimizer saved in ``last.pt`` matches the saved model's parameters (and a resume loads it)."""
        live = {id(p) for p in self.model.parameters()}
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if id(p) not in live:
                    self.optimizer.state.pop(p, None)
            group["params"] = [p for p in group["params"] if id(p) in live]

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Detection loss plus the weight penalty and distillation terms, each this rank's share."""
        preds = self.train_model(batch["img"])
        loss, items = self.criterion(preds, batch)
        total = loss.sum()
        out = {k: float(v) for k, v in items.items()}
        lc = self.cfg.loss
        if lc.quant_penalty > 0:
            penalty = quantization_penalty(self.model) * lc.quant_penalty * batch["img"].shape[0]
            total, out["quant_penalty"] = total + penalty, float(penalty.detach())
        if lc.distill > 0:
            with torch.no_grad():
                teacher = self.teacher(batch["img"])
            teacher = teacher[1] if isinstance(teacher, tuple) else teacher
            distill = distillation_loss(preds, teacher, lc.distill_features) * lc.distill * batch["img"].shape[0]
            total, out["distill"] = total + distill, float(distill.detach())
        return total, out
