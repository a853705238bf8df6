"""Subcommands for training: ``baseline`` (FP32) and ``qat``."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolchain.commands.common import train_imgsz, typed, yaml_mapping


def _baseline_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="data/synthetic/data.yaml")
    p.add_argument("--model", default="yolov8n.yaml", help="model yaml, or a .pt to start from")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--project", default="runs")
    p.add_argument("--name", default="baseline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--optimizer", default="auto")
    p.add_argument("--lr0", type=float, default=0.01)
    p.add_argument("--warmup-epochs", type=float, default=3.0)
    p.add_argument("--close-mosaic", type=int, default=10)
    p.add_argument("--patience", type=int, default=100)
    p.add_argument("--cache", default="", help="cache decoded images: ram, disk, or '' (none)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: every core)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run of this name")
    p.add_argument(
        "--overrides", type=yaml_mapping, default={}, help="other 'yolo train' args as YAML: '{mosaic: 0.5}'"
    )


def _baseline(a: argparse.Namespace) -> None:
    from toolchain.training.baseline import BaselineConfig, train_baseline

    fields = BaselineConfig.__dataclass_fields__
    cfg = BaselineConfig(**{k: v for k, v in vars(a).items() if k in fields})
    print(train_baseline(cfg))


def _qat_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="FP32 .pt: the starting point and the teacher")
    p.add_argument("--data", required=True)
    p.add_argument("--imgsz", type=int, default=None, help="default: the training size of the weights")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--optimizer", default="SGD")
    p.add_argument("--lr0", type=float, default=0.0002)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0005)
    p.add_argument("--grad-clip", type=float, default=10.0)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--mosaic", type=float, default=0.0)
    p.add_argument("--augment", type=yaml_mapping, default={})
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--calib-images", type=int, default=256)
    p.add_argument("--quant-config", default="configs/quant.yaml")
    p.add_argument("--freeze-bn-epoch", type=int, default=0)
    p.add_argument("--freeze-quant-epoch", type=int, default=-1)
    p.add_argument("--patience", type=int, default=0)
    p.add_argument("--schedule", type=yaml_mapping, default={})
    p.add_argument("--loss", type=yaml_mapping, default={})
    p.add_argument("--progressive", type=yaml_mapping, default={})
    p.add_argument("--project", default="runs/qat")
    p.add_argument("--name", default="qat")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run of this name")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dynamic-batch", action="store_true", help="export the ONNX files with a dynamic batch")


def _qat(a: argparse.Namespace) -> None:
    from toolchain.models.yolo import load_model
    from toolchain.quantization.config import QuantConfig
    from toolchain.training.losses import LossConfig
    from toolchain.training.pipeline import QATRunConfig, run_qat
    from toolchain.training.qat_trainer import QATConfig
    from toolchain.training.schedulers import ScheduleConfig
    from toolchain.training.trainer import TrainConfig

    imgsz = a.imgsz or train_imgsz(load_model(a.weights))
    train = TrainConfig(
        data=a.data, imgsz=imgsz, epochs=a.epochs, batch=a.batch, optimizer=a.optimizer, lr0=a.lr0,
        momentum=a.momentum, weight_decay=a.weight_decay, grad_clip=a.grad_clip, ema_decay=a.ema_decay,
        device=a.device, workers=a.workers, mosaic=a.mosaic, augment=a.augment, seed=a.seed,
        out=str(Path(a.project) / a.name), resume=a.resume,
        schedule=typed(ScheduleConfig, a.schedule, "schedule"), loss=typed(LossConfig, a.loss, "loss"),
    )  # fmt: skip
    qat = QATConfig(train, a.freeze_bn_epoch, a.freeze_quant_epoch, a.progressive)
    cfg = QATRunConfig(a.weights, qat, QuantConfig.from_yaml(a.quant_config), a.calib_images, a.patience,
                       dynamic_batch=a.dynamic_batch)  # fmt: skip
    run_qat(cfg)


COMMANDS = {
    "baseline": (_baseline_args, _baseline, "train the FP32 baseline with ultralytics"),
    "qat": (_qat_args, _qat, "quantization-aware training from a .pt: PTQ init, QAT, QDQ ONNX, mAP table"),
}
