"""The training data: ultralytics' YOLO dataset over the train split (its augmentations, with our
overrides), sharded over the ranks of a job (``toolchain.distributed.data``)."""

from __future__ import annotations

from pathlib import Path

from toolchain.distributed.data import sharded_loader
from toolchain.distributed.process import DistributedContext, main_first
from toolchain.training.config import TrainConfig


def build_train_dataset(cfg: TrainConfig, stride: int):
    """ultralytics' YOLO dataset over the train split, with our augmentation overrides."""
    from ultralytics.cfg import get_cfg  # ultralytics, imported when a dataset is built
    from ultralytics.data import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(Path(cfg.data).resolve()))
    overrides = {"imgsz": cfg.imgsz, "mosaic": cfg.mosaic, "batch": cfg.batch, "workers": cfg.workers, **cfg.augment}
    if cfg.mosaic == 0:
        overrides.setdefault("close_mosaic", 0)
    args = get_cfg(overrides=overrides)
    return build_yolo_dataset(args, data["train"], cfg.batch, data, mode="train", stride=stride)


def build_train_loader(cfg: TrainConfig, stride: int, ctx: DistributedContext | None = None):
    """This rank's shuffled loader over the train split (a one-process context: the whole split).

    One code path for any world size: step ``k`` of a job of W ranks sees the images a one-process
    run with batch ``W * cfg.batch`` sees at step ``k``. Rank 0 builds the dataset first: it writes
    ultralytics' label cache, which the other ranks then read.
    """
    ctx = ctx or DistributedContext()
    with main_first(ctx, "label cache"):
        dataset = build_train_dataset(cfg, stride)
    return sharded_loader(dataset, cfg.batch, cfg.workers, ctx, cfg.seed)
