"""Learning-rate schedules as per-epoch multipliers of the base rate (``torch.optim.lr_scheduler.LambdaLR``).

- ``cosine``: linear warm-up, then cosine decay to ``lrf``.
- ``cosine_restarts``: cosine cycles of ``cycle`` epochs, each restarting at the base rate.
- ``step``: multiply by ``gamma`` every ``step`` epochs.
- ``plateau``: handled by ``ReduceLROnPlateau`` on the val metric (see ``create_scheduler``).
- ``qat``: warm-up, ``pre_quant`` epochs at the base rate, then cosine decay to ``lrf`` over the QAT
  epochs. With ``pre_quant`` > 0 the quantizers stay off through the warm-up and the float epochs and
  come on with the cosine, at ``quant_start_epoch`` (``toolchain.jobs.qat`` turns them on then).
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from toolchain.config.fields import Decay, Fraction, NonNegativeInt, PositiveInt, check_fields

Schedule = Literal["cosine", "cosine_restarts", "step", "plateau", "qat"]
SCHEDULES = typing.get_args(Schedule)


@dataclass(frozen=True)
class ScheduleConfig:
    """Which schedule and its shape.

    Attributes:
        name: cosine (warm-up, then cosine to lrf), cosine_restarts, step, plateau (on val mAP) or qat
            (warm-up, pre_quant float epochs, then cosine).
        warmup_epochs: Linear warm-up from warmup_start of the base rate.
        warmup_start: Fraction of the base rate at epoch 0 of the warm-up.
        lrf: Final fraction of the base rate (cosine, cosine_restarts, qat).
        cycle: Epochs per cosine restart cycle (cosine_restarts).
        step: Epochs between decays (step).
        gamma: Decay factor (step, plateau).
        pre_quant: Float epochs at the base rate after the warm-up (qat); when > 0 the warm-up is float too
            and quantization starts at warmup_epochs + pre_quant, with the cosine.
        patience: Epochs without improvement before decaying (plateau).
    """

    name: Schedule = "cosine"
    warmup_epochs: NonNegativeInt = 0
    warmup_start: Fraction = 0.1
    lrf: Fraction = 0.01
    cycle: PositiveInt = 10
    step: PositiveInt = 10
    gamma: Decay = 0.1
    pre_quant: NonNegativeInt = 0
    patience: NonNegativeInt = 2

    def __post_init__(self) -> None:
        check_fields(self)


def _cosine(t: float, lrf: float) -> float:
    return lrf + (1 - lrf) * 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0)))


def quant_start_epoch(cfg: ScheduleConfig) -> int:
    """The first epoch with quantizers on: where the ``qat`` schedule's float phase (warm-up and
    ``pre_quant`` epochs) ends and its cosine starts; 0 (quantized from the start, warm-up included)
    without float epochs or for another schedule.

    Example:
        >>> quant_start_epoch(ScheduleConfig("qat", warmup_epochs=1, pre_quant=2))
        3
    """
    return cfg.warmup_epochs + cfg.pre_quant if cfg.name == "qat" and cfg.pre_quant > 0 else 0


def lr_multiplier(cfg: ScheduleConfig, epochs: int) -> Callable[[int], float]:
    """Multiplier of the base rate at each epoch (not used for ``plateau``)."""
    cosine_start = quant_start_epoch(cfg) or cfg.warmup_epochs  # qat: the quantized epochs

    def factor(epoch: int) -> float:
        if epoch < cfg.warmup_epochs:
            return cfg.warmup_start + (1 - cfg.warmup_start) * epoch / cfg.warmup_epochs
        e = epoch - cfg.warmup_epochs
        span = max(1, epochs - cfg.warmup_epochs)
        if cfg.name == "cosine":
            return _cosine(e / max(1, span - 1), cfg.lrf)
        if cfg.name == "cosine_restarts":
            return _cosine((e % cfg.cycle) / max(1, cfg.cycle), cfg.lrf)
        if cfg.name == "step":
            return cfg.gamma ** (e // cfg.step)
        if cfg.name == "qat":
            if epoch < cosine_start:
                return 1.0
            return _cosine((epoch - cosine_start) / max(1, epochs - cosine_start - 1), cfg.lrf)
        return 1.0

    return factor


def create_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, epochs: int):
    """The torch scheduler for ``cfg``; call ``step()`` once per epoch (``step(metric)`` for plateau)."""
    if cfg.name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.gamma, patience=cfg.patience
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(cfg, epochs))
