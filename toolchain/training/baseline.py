"""FP32 baseline training with ultralytics, offline, on CPU or GPU; resumable.

Example:
    >>> best = train_baseline(BaselineConfig(data="data/synthetic/data.yaml", epochs=10, imgsz=256))
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from base.dataset import load_data_yaml
from base.errors import ToolchainError
from toolchain.config.fields import (
    Device,
    ExistingPath,
    FieldError,
    ImageSize,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Writable,
    check_fields,
)
from toolchain.config.files import write_record

logger = logging.getLogger(__name__)
os.environ.setdefault("YOLO_OFFLINE", "1")


@dataclass(frozen=True)
class BaselineConfig:
    """How the FP32 baseline is trained.

    Attributes:
        data: The data.yaml.
        model: A model YAML (yolov8n.yaml...) to train from scratch, or a .pt to start from.
        imgsz: Square training size.
        epochs: Training epochs.
        hours: Cap the training at this many hours (ultralytics' time: after each epoch the epochs and
            the learning-rate schedule are refitted to end on time); 0: no cap, the epochs decide.
        batch: Batch size.
        device: cpu, 0, cuda:0...
        workers: Data-loading processes.
        project: Folder of the runs.
        name: Run name (<project>/<name>/weights/best.pt).
        seed: Random seed.
        optimizer: ultralytics optimizer name (auto picks SGD or AdamW by run length).
        lr0: Initial learning rate.
        warmup_epochs: Linear warm-up epochs.
        close_mosaic: Final epochs without mosaic.
        patience: Epochs without improvement before stopping early.
        cache: Cache decoded images in ram or on disk, or not ('').
        threads: Torch CPU threads (0: every core; ultralytics alone would use one core less).
        resume: Continue the interrupted run of this name from its last.pt.
        overrides: Any other 'yolo train' argument, e.g. {mosaic: 0.5}.
    """

    data: ExistingPath = "data/synthetic/data.yaml"
    model: str = "yolov8n.yaml"
    imgsz: ImageSize = 640
    epochs: PositiveInt = 100
    hours: NonNegativeFloat = 0.0
    batch: PositiveInt = 16
    device: Device = "cpu"
    workers: NonNegativeInt = 2
    project: Annotated[str, Writable()] = "runs"
    name: str = "baseline"
    seed: int = 0
    optimizer: Literal["auto", "SGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSProp"] = "auto"
    lr0: PositiveFloat = 0.01
    warmup_epochs: NonNegativeFloat = 3.0
    close_mosaic: NonNegativeInt = 10
    patience: NonNegativeInt = 100
    cache: Literal["", "ram", "disk"] = ""
    threads: NonNegativeInt = 0
    resume: bool = False
    overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_fields(self)
        model = self.model
        if model.endswith(".pt") and not Path(model).is_file():
            raise FieldError("model", f"{model}: weights not found; pass WEIGHTS= an existing .pt or a model yaml")

    @property
    def run_dir(self) -> Path:
        """``<project>/<name>``, absolute."""
        return (Path(self.project) / self.name).resolve()


def _train_args(cfg: BaselineConfig) -> dict:
    args = dict(
        data=str(Path(cfg.data).resolve()),
        imgsz=cfg.imgsz,
        epochs=cfg.epochs,
        batch=cfg.batch,
        device=cfg.device,
        workers=cfg.workers,
        project=str(cfg.run_dir.parent),
        name=cfg.name,
        exist_ok=True,
        seed=cfg.seed,
        optimizer=cfg.optimizer,
        lr0=cfg.lr0,
        warmup_epochs=cfg.warmup_epochs,
        close_mosaic=cfg.close_mosaic,
        patience=cfg.patience,
        plots=False,
        amp=cfg.device != "cpu",
        cache=cfg.cache or False,
    )
    if cfg.hours:
        args["time"] = cfg.hours
    return {**args, **cfg.overrides}


def use_all_cores(yolo, threads: int = 0) -> None:
    """Give torch every core on CPU: ultralytics caps its threads at one core less, half of a 2-core machine."""
    import torch

    n = threads or os.cpu_count() or 1
    yolo.add_callback("on_pretrain_routine_start", lambda trainer: torch.set_num_threads(n))


def train_baseline(cfg: BaselineConfig) -> Path:
    """Train (or resume) the FP32 baseline and return its best checkpoint.

    Writes ``<run>/baseline.yaml`` (this config, resolved, with its schema version) beside
    ultralytics' ``args.yaml``; ``toolchain baseline --config`` of it trains the same run again.

    Raises:
        ToolchainError: Bad data, missing weights, or nothing to resume.
    """
    from ultralytics import YOLO

    load_data_yaml(cfg.data)  # fails early, with the file and the fix, on a bad data.yaml
    last = cfg.run_dir / "weights" / "last.pt"
    start = time.perf_counter()
    if cfg.resume:
        if not last.is_file():
            raise ToolchainError(f"{last}: nothing to resume; run without RESUME=1 to start training")
        logger.info("Resuming baseline training from %s", last)
        yolo = YOLO(str(last))
        use_all_cores(yolo, cfg.threads)
        yolo.train(resume=True)
    else:
        logger.info(
            "Training FP32 baseline %s on %s for %d epochs at %d px", cfg.model, cfg.data, cfg.epochs, cfg.imgsz
        )
        yolo = YOLO(cfg.model)
        use_all_cores(yolo, cfg.threads)
        yolo.train(**_train_args(cfg))
    best = cfg.run_dir / "weights" / "best.pt"
    if not best.is_file():
        raise ToolchainError(f"{best}: training ended without a best checkpoint; see the log above")
    write_record(cfg.run_dir / "baseline.yaml", cfg, "baseline")
    logger.info("Finished baseline training in %.1f min: %s", (time.perf_counter() - start) / 60, best)
    return best
