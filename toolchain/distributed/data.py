"""ultralytics' training dataset sharded across ranks, in a fresh order every epoch.

A ``DistributedSampler`` (one seed on every rank) gives rank ``r`` the indices ``perm[r::world]`` of the
epoch's permutation ``perm`` (seeded by ``seed + epoch``), padded so every rank has as many batches.
Step ``k`` of the job therefore sees the images ``perm[k*B:(k+1)*B]`` with ``B = world * batch``: the
batch a one-process run with ``batch=B`` and this loader sees at step ``k``.

The loader is torch's own (not ultralytics' ``InfiniteDataLoader``, whose workers read the next epoch's
indices before ``set_epoch`` could change them); persistent workers keep the start-up cost to once.

Example:
    >>> loader = sharded_loader(dataset, batch=8, workers=4, ctx=ctx, seed=0)
    >>> for epoch in range(epochs):
    ...     set_epoch(loader, epoch)
    ...     for batch in loader: ...
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from toolchain.distributed.process import DistributedContext, cpu_threads


def sharded_loader(dataset: Dataset, batch: int, workers: int, ctx: DistributedContext, seed: int) -> DataLoader:
    """This rank's loader over ``dataset`` (an ultralytics ``YOLODataset``), ``batch`` images per step.

    Args:
        dataset: The training dataset (its ``collate_fn`` builds ultralytics' batch dicts).
        batch: Images per rank and step.
        workers: Loading processes per rank (at most this rank's share of the CPU cores).
        ctx: This rank (a one-process context gives one shard: a seeded shuffle).
        seed: The shuffle seed, the same on every rank.
    """
    from ultralytics.data.build import seed_worker

    sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed)
    batches = math.ceil(len(sampler) / batch)
    workers = min(workers, cpu_threads(ctx), 0 if batches <= 1 else batches)
    generator = torch.Generator().manual_seed(seed + ctx.rank)  # augmentation streams differ per rank
    return DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=workers, persistent_workers=workers > 0,
        pin_memory=ctx.device.type == "cuda", collate_fn=getattr(dataset, "collate_fn", None),
        worker_init_fn=seed_worker, generator=generator, drop_last=False,
    )  # fmt: skip


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Reseed the shuffle for ``epoch``; call it before iterating (other loaders are left alone)."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)
