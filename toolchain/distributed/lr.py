"""The effective batch of a job and the learning rate it trains with.

The effective batch is ``B = world_size * batch`` (``batch`` is per process). The rule fixes how the
size of one update grows with ``B`` relative to ``base_batch`` (the total batch ``lr0`` was tuned for):
``linear`` in proportion to ``B / base_batch``, ``sqrt`` to its square root, ``none`` not at all.

Our loss is a sum over the batch's images (ultralytics' convention: the mean times the batch size),
and a DDP step's gradient is the whole batch's gradient (``toolchain.distributed.loss``). So:

- SGD's update already grows in proportion to ``B`` at a fixed ``lr``: ``lr = lr0 * (B/base)**(p-1)``;
  ``linear`` keeps ``lr0``, and W processes of ``batch`` train exactly like one process of ``W*batch``.
- AdamW's update does not depend on the gradient's scale: ``lr = lr0 * (B/base)**p``.

with ``p`` = 1 (linear), 0.5 (sqrt), 0 (none). One process at ``base_batch`` always trains at ``lr0``.

Example:
    >>> rate = scaled_lr(0.001, batch=16, world_size=4, rule="linear", base_batch=16, optimizer="AdamW")
    >>> rate.lr
    0.004
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from base.errors import ToolchainError
from toolchain.distributed.config import LR_RULES

RULE_POWER = {"linear": 1.0, "sqrt": 0.5, "none": 0.0}
assert set(RULE_POWER) == set(LR_RULES)


@dataclass(frozen=True)
class ScaledLearningRate:
    """The learning rate of a job and how it was derived."""

    lr: float
    lr0: float
    batch: int
    world_size: int
    base_batch: int
    rule: str
    optimizer: str

    @property
    def effective_batch(self) -> int:
        return self.batch * self.world_size

    def __str__(self) -> str:
        return (
            f"effective batch {self.effective_batch} ({self.world_size} process(es) x {self.batch}); "
            f"lr {self.lr:.6g} (lr0 {self.lr0:g} tuned for batch {self.base_batch}, rule {self.rule}, {self.optimizer})"
        )


def scaled_lr(
    lr0: float, batch: int, world_size: int, rule: str = "linear", base_batch: int = 0, optimizer: str = "SGD"
) -> ScaledLearningRate:
    """The learning rate for ``world_size`` processes of ``batch`` images (see the module's rule).

    Args:
        lr0: The configured learning rate, tuned for ``base_batch``.
        batch: Images per process and step.
        world_size: Processes.
        rule: ``linear``, ``sqrt`` or ``none``.
        base_batch: The total batch ``lr0`` was tuned for (0: ``batch``, one process).
        optimizer: ``SGD`` (the step grows with the summed loss) or ``AdamW`` (scale-free).
    """
    if rule not in RULE_POWER:
        raise ToolchainError(f"distributed: lr_scaling must be one of {list(LR_RULES)}, got '{rule}'")
    base = base_batch or batch
    power = RULE_POWER[rule] - (1.0 if optimizer == "SGD" else 0.0)
    lr = lr0 * (batch * world_size / base) ** power
    return ScaledLearningRate(lr, lr0, batch, world_size, base, rule, optimizer)


def rescale_lr(optimizer: torch.optim.Optimizer, scheduler, ratio: float) -> None:
    """Multiply the rates of a resumed optimizer and its scheduler by ``ratio`` (``new_lr / saved_lr``).

    A checkpoint keeps the rate of the world size it was written at; resuming at another world size
    (or rule) rescales it, schedule position unchanged.
    """
    for group in optimizer.param_groups:
        group["lr"] *= ratio
        if "initial_lr" in group:
            group["initial_lr"] *= ratio
    if hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [lr * ratio for lr in scheduler.base_lrs]
