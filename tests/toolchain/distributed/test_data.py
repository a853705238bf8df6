"""Shards that partition each epoch, a new order every epoch, the same global batches as one process."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from toolchain.distributed.data import set_epoch, sharded_loader
from toolchain.distributed.process import DistributedContext


class Indices(Dataset):
    """Item ``i`` is ``i``; ultralytics' datasets bring their own ``collate_fn`` too."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i

    @staticmethod
    def collate_fn(items: list[int]) -> torch.Tensor:
        return torch.tensor(items)


def epoch_batches(world: int, batch: int, epoch: int, n: int = 24) -> list[list[list[int]]]:
    """Each rank's batches in ``epoch`` (rank, step, images)."""
    out = []
    for rank in range(world):
        loader = sharded_loader(Indices(n), batch, 0, DistributedContext(rank=rank, world_size=world), seed=7)
        set_epoch(loader, epoch)
        out.append([b.tolist() for b in loader])
    return out


def test_ranks_partition_the_epoch_with_as_many_steps_each():
    ranks = epoch_batches(world=2, batch=3, epoch=0)
    assert len(ranks[0]) == len(ranks[1]) == 4
    seen = [i for rank in ranks for b in rank for i in b]
    assert sorted(seen) == list(range(24))


def test_every_epoch_has_a_new_order_the_same_on_every_run():
    assert epoch_batches(2, 3, epoch=1) != epoch_batches(2, 3, epoch=0)
    assert epoch_batches(2, 3, epoch=1) == epoch_batches(2, 3, epoch=1)


def test_a_step_of_two_ranks_sees_the_batch_of_one_process_with_the_total_batch():
    two = epoch_batches(world=2, batch=3, epoch=2)
    one = epoch_batches(world=1, batch=6, epoch=2)[0]
    for step, images in enumerate(one):
        assert sorted(two[0][step] + two[1][step]) == sorted(images)


def test_an_uneven_dataset_is_padded_so_no_rank_waits_for_a_missing_step():
    ranks = epoch_batches(world=2, batch=4, epoch=0, n=13)
    assert [len(r) for r in ranks] == [2, 2]
    assert sorted({i for r in ranks for b in r for i in b}) == list(range(13))
