"""Subcommands for training: ``baseline`` (FP32, ultralytics) and ``qat`` (the QAT job)."""

from __future__ import annotations

from toolchain.config.flags import Command
from toolchain.jobs.qat import QATJobConfig, run_qat
from toolchain.training.baseline import BaselineConfig, train_baseline


def _baseline(cfg: BaselineConfig) -> None:
    print(train_baseline(cfg))


def _qat(cfg: QATJobConfig) -> None:
    run_qat(cfg)


TRAIN_FLAGS = {
    f"--{name.replace('_', '-')}": f"train.{name}"
    for name in ("data", "imgsz", "epochs", "batch", "optimizer", "lr0", "momentum", "weight_decay", "grad_clip",
                 "ema_decay", "amp", "device", "workers", "threads", "mosaic", "augment", "val_images", "seed")
}  # fmt: skip
QAT_FLAGS = {
    **TRAIN_FLAGS, "--schedule": "train.schedule", "--loss": "train.loss",
    "--freeze-bn-epoch": "qat.freeze_bn_epoch", "--freeze-quant-epoch": "qat.freeze_quant_epoch",
    "--progressive": "qat.progressive", "--dynamic-batch": "export.dynamic_batch", "--opset": "export.opset",
    "--dist-backend": "distributed.backend", "--dist-timeout": "distributed.timeout_s",
    "--lr-scaling": "distributed.lr_scaling", "--base-batch": "distributed.base_batch",
}  # fmt: skip

COMMANDS = [
    Command("baseline", BaselineConfig, _baseline, "train the FP32 baseline with ultralytics"),
    Command("qat", QATJobConfig, _qat,
            "quantization-aware training from a .pt: PTQ init, QAT, QDQ ONNX, mAP table", QAT_FLAGS,
            {"--quant-config": "quant"}, {"export.imgsz": "train.imgsz: the flag, else the weights' training size"}),
]  # fmt: skip
