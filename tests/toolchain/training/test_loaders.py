"""The train loader: ultralytics' batches at the configured size, in a seeded order."""

from __future__ import annotations

import torch

from toolchain.training.config import TrainConfig
from toolchain.training.loaders import build_train_loader


def _first_files(data, seed: int) -> list[str]:
    loader = build_train_loader(TrainConfig(data=str(data), imgsz=64, batch=8, workers=0, seed=seed), stride=32)
    return list(next(iter(loader))["im_file"])


def test_batches_of_the_train_split_at_the_configured_size(tiny_dataset):
    loader = build_train_loader(TrainConfig(data=str(tiny_dataset), imgsz=64, batch=8, workers=0), stride=32)
    assert len(loader) == 3  # 24 train images
    batch = next(iter(loader))
    assert batch["img"].shape == (8, 3, 64, 64) and batch["img"].dtype == torch.uint8
    assert {"cls", "bboxes", "batch_idx"} <= set(batch)


def test_the_order_follows_the_seed(tiny_dataset):
    assert _first_files(tiny_dataset, 0) == _first_files(tiny_dataset, 0) != _first_files(tiny_dataset, 1)
