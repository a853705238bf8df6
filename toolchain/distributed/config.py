"""``DistributedConfig``: how a ``torchrun`` job communicates and scales its learning rate.

Example:
    >>> cfg = DistributedConfig(backend="auto", timeout_s=600, lr_scaling="sqrt", base_batch=16)
"""

from __future__ import annotations

from dataclasses import dataclass

from deploy.errors import ToolchainError

BACKENDS = ("auto", "nccl", "gloo")
LR_RULES = ("linear", "sqrt", "none")


@dataclass(frozen=True)
class DistributedConfig:
    """Settings of a multi-process job (ignored when the job has one process).

    Attributes:
        backend: ``auto`` (NCCL when the device is CUDA, else gloo), ``nccl`` or ``gloo``.
        timeout_s: Seconds a collective or barrier waits for the other ranks before the job fails
            with a message (it also bounds how long the others wait while rank 0 validates).
        lr_scaling: How the size of an update grows with the effective batch ``B`` (all ranks
            together) relative to ``base_batch``: ``linear`` (in proportion to ``B``), ``sqrt``
            (to the square root of ``B``) or ``none`` (it stays the same). See ``toolchain.distributed.lr``.
        base_batch: The total batch ``lr0`` was tuned for (0: the per-process batch, i.e. one process).
        global_target_norm: Normalise each rank's detection loss by the target count of the whole batch,
            so that the averaged gradient equals one process's gradient on the whole batch (one scalar
            all-reduce per step). Off: each rank normalises by its own targets, as ultralytics does.
    """

    backend: str = "auto"
    timeout_s: float = 1800.0
    lr_scaling: str = "linear"
    base_batch: int = 0
    global_target_norm: bool = True

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ToolchainError(f"distributed: backend must be one of {list(BACKENDS)}, got '{self.backend}'")
        if self.lr_scaling not in LR_RULES:
            raise ToolchainError(f"distributed: lr_scaling must be one of {list(LR_RULES)}, got '{self.lr_scaling}'")
        if not self.timeout_s > 0:
            raise ToolchainError(f"distributed: timeout_s must be > 0 seconds, got {self.timeout_s}")
        if self.base_batch < 0:
            raise ToolchainError(
                f"distributed: base_batch must be >= 0 (0: the per-process batch), got {self.base_batch}"
            )
