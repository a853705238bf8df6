"""Each rank's detection loss as its share of the loss of the whole (all ranks') batch.

ultralytics' ``v8DetectionLoss`` returns ``b * (box, cls, dfl)`` where every term is a sum over the
batch's ``b`` images divided by ``T``, the sum of the assigner's target scores over those images. DDP
averages the ranks' gradients. With ``W`` ranks of ``b`` images, one process's loss on the whole batch
is ``W*b * S / T_all`` (``S`` and ``T`` add over images), while rank ``r`` computes ``b * S_r / T_r``:

- the factor ``W``: DDP's average divides by ``W``; ultralytics multiplies the loss by ``W``
  (``backward_scale``) so that the averaged gradient is the sum, as in one process;
- the target normaliser: ``T_r`` differs between ranks, so ``sum_r S_r / T_r != S / T_all``.
  ``GlobalTargetNormalization`` rescales each rank's loss by ``W * T_r / T_all`` (one scalar
  all-reduce; ``T`` comes from the assigner, which runs without gradients), making it exactly
  ``W*b * S_r / T_all``: the ranks' losses add up to the one-process loss, and the gradients too.

The extra QAT terms (quantization penalty, distillation) are ``b *`` a per-image mean or a weight
function, already shares that add up to the whole batch's term.

Example:
    >>> criterion = GlobalTargetNormalization(detection_criterion(model, cfg.loss), ctx)
    >>> loss, items = criterion(preds, batch)
    >>> (loss * backward_scale(ctx)).backward()
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from toolchain.distributed.process import DistributedContext


def backward_scale(ctx: DistributedContext) -> int:
    """What to multiply a rank's loss share by before ``backward``: DDP averages gradients, we want their sum."""
    return ctx.world_size


class GlobalTargetNormalization:
    """Wraps a ``v8DetectionLoss``: the returned loss is this rank's share of the whole batch's loss.

    The loss items (box, cls, dfl: each a sum over images divided by ``T``) get the same factor, so
    their mean over the ranks is the whole batch's items, as one process logs them.

    Args:
        criterion: ultralytics' detection loss (it has an ``assigner`` module).
        ctx: This rank; a one-process context leaves the loss unchanged.
    """

    def __init__(self, criterion, ctx: DistributedContext) -> None:
        self.criterion, self.ctx = criterion, ctx
        self._target_sum: torch.Tensor | None = None
        criterion.assigner.register_forward_hook(self._record_targets)

    def _record_targets(self, module, inputs, outputs) -> None:
        self._target_sum = outputs[2].sum()  # target_scores, the T of the loss (ultralytics clamps it at 1)

    def __call__(self, preds, batch: dict) -> tuple[torch.Tensor, dict]:
        self._target_sum = None
        loss, items = self.criterion(preds, batch)
        if not self.ctx.is_distributed:
            return loss, items
        if self._target_sum is None:
            raise RuntimeError("the detection loss did not call its assigner: ultralytics' v8DetectionLoss changed")
        local = self._target_sum.clamp(min=1)
        total = self._target_sum.detach().float().clone()
        dist.all_reduce(total)
        share = self.ctx.world_size * local / total.clamp(min=1)
        return loss * share, {k: v * share.detach() for k, v in items.items()}
