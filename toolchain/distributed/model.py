"""The model across ranks: calibration ranges broadcast from rank 0, the DDP wrapper, and a check
that every rank holds the same weights, statistics and ranges.

PTQ calibration runs once, on rank 0. Before it, the other ranks' quantizers have no range (``amax``
is ``None``, no LSQ parameter), so DDP could not even compare parameter lists: the ranges travel
first (``broadcast_quantizer_ranges``), then ``wrap_ddp`` broadcasts everything else and averages
gradients, the learned ranges (LSQ ``learned_amax``) included.

Example:
    >>> if ctx.is_main:
    ...     calibrate(model, batches)
    >>> broadcast_quantizer_ranges(model, ctx)
    >>> ddp = wrap_ddp(model, ctx, find_unused_parameters=False, broadcast_buffers=False)
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from toolchain.distributed.process import DistributedContext, broadcast_object, collective_errors
from toolchain.quantization.modules import QuantConv2d
from toolchain.quantization.quantizer import TensorQuantizer

RangeState = dict[str, torch.Tensor | None]


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (the model itself otherwise): what is saved, evaluated and EMA'd."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def quantizer_ranges(model: nn.Module) -> dict[str, RangeState]:
    """Every quantizer's range by module name (a shared quantizer once): ``amax``, ``amin``, ``learned_amax``."""
    out = {}
    for name, q in unwrap(model).named_modules():
        if isinstance(q, TensorQuantizer):
            learned = q.learned_amax.detach() if q.learned_amax is not None else None
            out[name] = {k: None if v is None else v.detach().cpu().clone()
                         for k, v in (("amax", q.amax), ("amin", q.amin), ("learned_amax", learned))}  # fmt: skip
    return out


def load_quantizer_ranges(model: nn.Module, ranges: dict[str, RangeState]) -> None:
    """Set the quantizers' ranges (and LSQ parameters) from ``quantizer_ranges`` of an identical model.

    Raises:
        ValueError: The quantizer names differ (the ranks did not prepare the same model).
    """
    named = {n: q for n, q in unwrap(model).named_modules() if isinstance(q, TensorQuantizer)}
    device = next(unwrap(model).parameters()).device
    if set(named) != set(ranges):
        diff = sorted(set(named) ^ set(ranges))[:5]
        raise ValueError(f"quantizers differ from the source model's (first: {diff}); prepare one model on every rank")
    for name, state in ranges.items():
        q = named[name]
        q.amax = None if state["amax"] is None else state["amax"].to(device)
        q.amin = None if state["amin"] is None else state["amin"].to(device)
        learned = state["learned_amax"]
        q.learned_amax = None if learned is None else nn.Parameter(learned.to(device))


def broadcast_quantizer_ranges(model: nn.Module, ctx: DistributedContext, src: int = 0) -> int:
    """Give every rank rank ``src``'s calibration ranges; returns how many quantizers were set.

    Call it after ``calibrate`` ran on ``src`` and before the optimizer and DDP are built: the other
    ranks get new ``learned_amax`` parameters.
    """
    if not ctx.is_distributed:
        return len(quantizer_ranges(model))
    ranges = broadcast_object(quantizer_ranges(model) if ctx.rank == src else None, ctx, src)
    if ctx.rank != src:
        load_quantizer_ranges(model, ranges)
    return len(ranges)


def set_lsq_global_batch(model: nn.Module, world_size: int) -> int:
    """Tell every activation quantizer that the whole batch is ``world_size`` times the one it sees.

    LSQ scales a range's gradient by ``1/sqrt(N * qmax)`` with ``N`` the elements of the quantized
    tensor. For an activation, ``N`` grows with the batch: a rank of ``b`` images would use
    ``sqrt(world_size)`` times the factor of one process of ``world_size * b``. With
    ``global_batch_factor`` the quantizer counts the whole batch's elements (weights are whole on
    every rank: their factor stays 1). Returns how many quantizers were set.
    """
    weights = {id(m.weight_quantizer) for m in unwrap(model).modules() if isinstance(m, QuantConv2d)}
    activations = [q for q in unwrap(model).modules() if isinstance(q, TensorQuantizer) and id(q) not in weights]
    for q in activations:  # modules() lists a shared quantizer once
        q.global_batch_factor = world_size
    return len(activations)


def ddp_options(model: nn.Module, freeze_bn_epoch: int, freeze_quant_epoch: int, quantizers_start_off: bool) -> dict:
    """``wrap_ddp``'s keyword arguments for a QAT run (see ``wrap_ddp`` for what each costs).

    Args:
        model: The prepared model (its LSQ parameters decide whether any can go unused).
        freeze_bn_epoch: Epoch from which BatchNorm statistics are frozen (0: from the start; -1: never).
        freeze_quant_epoch: Epoch from which learned ranges become fixed buffers (-1: never).
        quantizers_start_off: Some quantizers begin disabled (progressive quantization, float warm-up).
    """
    learned = any(isinstance(q, TensorQuantizer) and q.learned_amax is not None for q in unwrap(model).modules())
    return {
        "broadcast_buffers": freeze_bn_epoch != 0,
        "find_unused_parameters": learned and (freeze_quant_epoch >= 0 or quantizers_start_off),
    }


def wrap_ddp(
    model: nn.Module, ctx: DistributedContext, find_unused_parameters: bool = False, broadcast_buffers: bool = True
) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` (the model itself in a one-process run).

    Wrap after quantizers are placed and their ranges broadcast; DDP then copies rank 0's parameters and
    buffers to every rank. Parameters with ``requires_grad=False`` (the DFL conv) are not DDP's business.

    Args:
        model: The model on ``ctx.device``.
        ctx: This rank.
        find_unused_parameters: Needed when some trainable parameter gets no gradient in a step:
            LSQ ranges of quantizers turned off (progressive quantization, float warm-up epochs) or
            frozen into buffers mid-run (``freeze_quant_epoch``). Costs a graph walk per step.
        broadcast_buffers: Copy rank 0's buffers (BatchNorm statistics, fixed ranges) to every rank
            before each forward. Needed while BatchNorm updates its statistics (each rank would drift
            to its own); when BatchNorm is frozen from the first epoch, buffers never change and
            ``False`` saves a broadcast per step.
    """
    if not ctx.is_distributed:
        return model
    with collective_errors(ctx, "wrapping the model in DDP"):
        return nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters, broadcast_buffers=broadcast_buffers,
        )  # fmt: skip


def broadcast_parameters(params: list[nn.Parameter], ctx: DistributedContext, src: int = 0) -> None:
    """Rank ``src``'s values of parameters outside the DDP model (distillation adapters) on every rank.

    DDP copies the wrapped model's parameters from rank 0 when it wraps it; parameters that train beside
    the model (an optimizer group of a loss module) need the same, or each rank starts from its own init.
    """
    if not ctx.is_distributed or not params:
        return
    with collective_errors(ctx, "broadcasting the parameters outside the model"):
        for p in params:
            dist.broadcast(p.data, src=src)


def average_gradients(params: list[nn.Parameter], ctx: DistributedContext) -> None:
    """Average the gradients of parameters outside the DDP model over the ranks, as DDP averages the model's.

    Call after ``backward`` and before the optimizer step, on every rank with the same list. A parameter
    without a gradient on this rank counts as zeros (and gets the average): the ranks then step alike.
    """
    if not ctx.is_distributed or not params:
        return
    with collective_errors(ctx, "averaging the gradients outside the model"):
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
            p.grad /= ctx.world_size


def copy_buffers_from_main(model: nn.Module, ctx: DistributedContext) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics that each rank updated on its own shard).

    DDP with ``broadcast_buffers`` does this before each forward; after an epoch's last step the
    ranks' statistics differ until the next one. Called at the end of an epoch, every rank then holds
    the model rank 0 checkpoints.
    """
    if not ctx.is_distributed:
        return
    with collective_errors(ctx, "copying rank 0's BatchNorm statistics"):
        for buffer in unwrap(model).buffers():
            dist.broadcast(buffer.data, src=0)


def state_digest(model: nn.Module) -> tuple[list[str], torch.Tensor]:
    """Names and a float64 ``[n, 2]`` digest (sum, sum of squares) of every floating tensor of the model's state."""
    names, rows = [], []
    for name, t in unwrap(model).state_dict(keep_vars=False).items():
        if t.dtype.is_floating_point:
            t = t.detach().double()
            names.append(name)
            rows.append(torch.stack([t.sum(), t.square().sum()]).cpu())
    return names, torch.stack(rows) if rows else torch.zeros(0, 2, dtype=torch.float64)


def differing_tensors(model: nn.Module, ctx: DistributedContext) -> list[str]:
    """Names of the model's weights, statistics and ranges that are not bit-identical on every rank.

    Every rank must call it. An empty list is the invariant of data-parallel training.
    """
    mine = state_digest(model)
    if not ctx.is_distributed:
        return []
    gathered: list = [None] * ctx.world_size
    with collective_errors(ctx, "comparing the model across ranks"):
        dist.all_gather_object(gathered, mine, group=ctx.cpu_group)
    names, digest = mine
    differ = set()
    for other_names, other in gathered:
        if other_names != names:
            differ |= set(names) ^ set(other_names) or {"<the ranks' models list their tensors differently>"}
            continue
        differ |= {n for n, d in zip(names, (other != digest).any(1).tolist()) if d}
    return sorted(differ)
