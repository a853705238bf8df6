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
from toolchain.training.distill import Distiller
from toolchain.training.losses import quantization_penalty
from toolchain.training.schedulers import quant_start_epoch
from toolchain.training.trainer import Callback, Trainer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QATConfig:
    """What QAT adds to training.

    Attributes:
        freeze_bn_epoch: From this epoch on, BatchNorm statistics stop updating (-1: never).
        freeze_quant_epoch: From this epoch on, learned quantizer ranges stop changing (-1: never); needs
            quant.input.learn_amax or quant.weight.learn_amax (the qat job refuses it otherwise).
        progressive: Start epoch to module-name regex, enabling quantizers stage by stage (empty: all at
            once), e.g. {0: 'model\\.[0-9]\\.', 1: 'model\\.(1[0-9]|2[0-1])\\.', 2: 'model\\.22\\.'}; the
            stages must cover every quantized conv, and with the qat schedule's pre_quant the first stage
            starts where its float phase ends (warmup_epochs + pre_quant).
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
        teacher: The FP32 model, needed when ``cfg.loss.distill > 0`` (each rank runs it on its shard): the
            student's own FP32 weights, or another model with its classes (another size: its features
            are matched through learned 1x1 adapters, trained with the student and kept in ``last.pt``).
        teacher_name: The teacher in error messages (its file).
        callbacks: Called at fit and epoch boundaries.
        dist: This process's place in a torchrun job (``None``: one process).
        distributed: The job's lr scaling rule and loss normalisation.
    """

    def __init__(
        self, model: nn.Module, cfg: TrainConfig, qat: QATConfig, teacher: nn.Module | None = None,
        callbacks: list[Callback] | None = None, dist: DistributedContext | None = None,
        distributed: DistributedConfig | None = None, teacher_name: str = "the teacher",
    ) -> None:  # fmt: skip
        if not quantizers(model):
            raise ToolchainError("QAT: the model has no quantizers; run quantize_model() and calibrate() first")
        if cfg.loss.distill > 0 and teacher is None:
            raise ToolchainError("QAT: distill > 0 needs the FP32 teacher model")
        # before the optimizer is made (in Trainer.__init__): the adapters train with the model
        self.distiller = (Distiller(teacher, model, cfg.loss.distill_features, teacher_name)
                          if cfg.loss.distill > 0 else None)  # fmt: skip
        super().__init__(model, cfg, callbacks, dist, distributed)
        if self.distiller is not None:
            self.distiller.to(self.device)
        self.qat = qat

    def _adapters(self) -> list[nn.Parameter]:
        """The distillation's feature adapters' parameters (a teacher of another width); none otherwise."""
        return list(self.distiller.parameters()) if self.distiller is not None else []

    def extra_param_groups(self) -> list[dict]:
        """The feature adapters, decayed as the weights."""
        adapters = self._adapters()
        return [{"params": adapters, "weight_decay": self.cfg.weight_decay}] if adapters else []

    def ddp_options(self) -> dict:
        """Buffers broadcast only while BatchNorm statistics update; unused parameters looked for only
        when an LSQ range can go without a gradient (its quantizer off, or frozen mid-run)."""
        starts_off = bool(self.qat.progressive) or quant_start_epoch(self.cfg.schedule) > 0
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
        if self.distiller is not None:
            distill = self.distiller.loss(preds, batch["img"]) * lc.distill * batch["img"].shape[0]
            total, out["distill"] = total + distill, float(distill.detach())
        return total, out

    def state(self, epoch: int) -> dict:
        """``Trainer.state`` and the feature adapters' weights (when the teacher has another width)."""
        state = super().state(epoch)
        if self._adapters():
            state["distill_adapters"] = self.distiller.state_dict()
        return state

    def load_state(self, state: dict) -> None:
        """``Trainer.load_state``, the feature adapters' weights first (the optimizer state refers to them)."""
        if self._adapters():
            if "distill_adapters" not in state:
                raise ToolchainError(
                    "QAT resume: last.pt holds no distillation adapters, but this run's "
                    "teacher needs them: resume with the teacher and loss it was started with"
                )
            self.distiller.load_state_dict(state["distill_adapters"])
        super().load_state(state)
