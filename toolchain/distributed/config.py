"""``DistributedConfig``: how a ``torchrun`` job communicates and scales its learning rate.

Example:
    >>> cfg = DistributedConfig(backend="auto", timeout_s=600, lr_scaling="sqrt", base_batch=16)
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

from toolchain.config.fields import NonNegativeInt, PositiveFloat, check_fields

Backend = Literal["auto", "nccl", "gloo"]
LrRule = Literal["linear", "sqrt", "none"]
BACKENDS: tuple[str, ...] = typing.get_args(Backend)
LR_RULES: tuple[str, ...] = typing.get_args(LrRule)


@dataclass(frozen=True)
class DistributedConfig:
    """Settings of a multi-process job (``torchrun``); a one-process run uses only the lr rule (a no-op there).

    Attributes:
        backend: auto (NCCL when the device is CUDA, else gloo), nccl or gloo.
        timeout_s: Seconds a collective or barrier waits for the other ranks before the job fails
            with a message (it also bounds how long the others wait while rank 0 validates and exports).
        lr_scaling: How the size of an update grows with the effective batch B (all ranks together)
            relative to base_batch: linear (in proportion to B), sqrt (to the square root of B) or
            none (it stays the same). With SGD, linear keeps lr0 (our loss sums over images).
        base_batch: The total batch lr0 was tuned for (0: the per-process batch, i.e. one process).
        global_target_norm: Normalise each rank's detection loss by the target count of the whole batch,
            so that the averaged gradient equals one process's gradient on the whole batch (one scalar
            all-reduce per step). Off: each rank normalises by its own targets, as ultralytics does.
    """

    backend: Backend = "auto"
    timeout_s: PositiveFloat = 1800.0
    lr_scaling: LrRule = "linear"
    base_batch: NonNegativeInt = 0
    global_target_norm: bool = True

    def __post_init__(self) -> None:
        check_fields(self)
