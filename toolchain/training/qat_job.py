"""``make qat`` end to end: FP32 .pt -> PTQ init -> QAT epochs -> best checkpoint -> QDQ ONNX (checked)
-> FP32 / PTQ INT8 / QAT INT8 evaluated through ONNX Runtime and our evaluator. Resumable.

Example:
    >>> report = run_qat(QATRunConfig(weights="best.pt", qat=QATConfig(train=TrainConfig(data="data.yaml"))))
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml

from deploy.dataset import load_data_yaml, load_split
from deploy.errors import ToolchainError
from deploy.evaluate import EvalResult, evaluate
from deploy.fileio import atomic_path, write_json
from deploy.qdq_check import check_qdq
from deploy.runtime.onnxruntime import OnnxRuntimeRunner
from toolchain.export.onnx import ExportConfig, onnx_from_model
from toolchain.models.yolo import class_names, load_model
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.placement import quantize_model
from toolchain.quantization.ptq import calibrate, calibration_batches
from toolchain.training.callbacks import (
    EarlyStopping,
    ModelCheckpoint,
    ProgressiveQuantization,
    QuantizationErrorMonitor,
    ResultsCSV,
    TensorBoardLogger,
)
from toolchain.training.qat_trainer import QATConfig, QATTrainer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QATRunConfig:
    """Everything ``make qat`` needs.

    Attributes:
        weights: The FP32 ``.pt`` (the teacher and the starting point).
        qat: Training and QAT settings (``qat.train.out`` is the run folder).
        quant: Quantization settings (placement, calibrators).
        calib_images: Train images for the PTQ calibration that starts QAT.
        patience: Early stopping patience in epochs (0: off).
        sqnr: Write the per-layer SQNR CSV and plot each epoch.
        dynamic_batch: Export the ONNX files with a dynamic batch (engines then get a batch profile).
    """

    weights: str
    qat: QATConfig
    quant: QuantConfig = field(default_factory=QuantConfig)
    calib_images: int = 256
    patience: int = 0
    sqnr: bool = True
    dynamic_batch: bool = False


def _check_compatible(model: torch.nn.Module, data: str, weights: str) -> None:
    names = class_names(model)
    spec = load_data_yaml(data)
    if len(names) != spec.nc:
        raise ToolchainError(
            f"{weights}: the model has {len(names)} classes {names}, but {data} has {spec.nc} {spec.names}; "
            "train a baseline on this data first"
        )


def _prepare(cfg: QATRunConfig, run: Path) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The FP32 teacher and the PTQ-calibrated student; writes fp32.onnx and ptq.int8.onnx."""
    teacher = load_model(cfg.weights)
    train = cfg.qat.train
    _check_compatible(teacher, train.data, cfg.weights)
    export = ExportConfig(imgsz=train.imgsz, dynamic_batch=cfg.dynamic_batch)
    onnx_from_model(teacher, run / "fp32.onnx", export, source=cfg.weights)
    student = copy.deepcopy(teacher)
    report = quantize_model(student, cfg.quant)
    calibrate(student, calibration_batches(train.data, train.imgsz, cfg.calib_images, train.batch), train.device)
    meta = {**cfg.quant.to_dict(), "placement": report.summary()}
    onnx_from_model(student, run / "ptq.int8.onnx", export, "int8", cfg.weights, meta)
    with atomic_path(run / "ptq.pt") as tmp:
        torch.save({"model": student}, tmp)
    return teacher, student


def _callbacks(cfg: QATRunConfig, run: Path) -> list:
    train = cfg.qat.train
    stages = dict(cfg.qat.progressive)
    if not stages and train.schedule.name == "qat" and train.schedule.pre_quant > 0:
        stages = {train.schedule.pre_quant: ".*"}  # float epochs first, then everything quantized
    callbacks = [ProgressiveQuantization(stages)] if stages else []
    if cfg.sqnr:
        batch = torch.from_numpy(calibration_batches(train.data, train.imgsz, 4, 4, split="val")[0])
        callbacks.append(QuantizationErrorMonitor(batch, run))
    callbacks += [ModelCheckpoint(run / "weights"), ResultsCSV(run / "results.csv"), TensorBoardLogger(run / "tb")]
    if cfg.patience:
        callbacks.append(EarlyStopping(cfg.patience))
    return callbacks


def evaluate_onnx(paths: dict[str, Path], data: str) -> dict[str, EvalResult]:
    """mAP of each ONNX through ONNX Runtime (the reference for Q/DQ arithmetic) on the val split."""
    split = load_split(load_data_yaml(data), "val")
    out = {}
    for name, path in paths.items():
        with OnnxRuntimeRunner(path) as runner:
            out[name] = evaluate(runner, split)
    return out


def table(results: dict[str, EvalResult]) -> str:
    """Markdown table: mAP50-95, mAP50, small-object AP and per-class AP50-95 of each model."""
    names = list(next(iter(results.values())).per_class)
    head = "| model | mAP50-95 | mAP50 | AP small | " + " | ".join(names) + " |"
    rows = [head, "|" + "---|" * (4 + len(names))]
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    for model, r in results.items():
        cells = [fmt(r.map50_95), fmt(r.map50), fmt(r.ap_small)] + [fmt(r.per_class[n]) for n in names]
        rows.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def run_qat(cfg: QATRunConfig) -> dict:
    """Run (or resume) the whole QAT job; returns the report written to ``<run>/report.json``."""
    train = cfg.qat.train
    run = Path(train.out)
    last = run / "weights" / "last.pt"
    start = time.perf_counter()
    run.mkdir(parents=True, exist_ok=True)
    (run / "qat.yaml").write_text(yaml.safe_dump(_plain(cfg), sort_keys=False))
    if train.resume:
        if not last.is_file():
            raise ToolchainError(f"{last}: nothing to resume; run without RESUME=1 to start QAT")
        state = torch.load(last, weights_only=False, map_location="cpu")
        teacher = load_model(cfg.weights) if train.loss.distill > 0 else None
        trainer = QATTrainer(state["model"], cfg.qat, teacher, _callbacks(cfg, run))
        trainer.load_state(state)
        logger.info("Resuming QAT at epoch %d from %s", trainer.start_epoch + 1, last)
    else:
        teacher, student = _prepare(cfg, run)
        trainer = QATTrainer(student, cfg.qat, teacher if train.loss.distill > 0 else None, _callbacks(cfg, run))
    trainer.fit()
    best = torch.load(run / "weights" / "best.pt", weights_only=False, map_location="cpu")["model"]
    export = ExportConfig(imgsz=train.imgsz, dynamic_batch=cfg.dynamic_batch)
    qat_onnx = onnx_from_model(best, run / "qat.int8.onnx", export, "int8", cfg.weights,
                               {**cfg.quant.to_dict(), "qat": _plain(cfg.qat)})  # fmt: skip
    checked = check_qdq(qat_onnx)
    if not checked.ok:
        raise ToolchainError(f"{qat_onnx}: check-qdq found violations:\n{checked.summary()}")
    paths = {"FP32": run / "fp32.onnx", "PTQ INT8": run / "ptq.int8.onnx", "QAT INT8": qat_onnx}
    results = evaluate_onnx(paths, train.data)
    epochs = [h["train_seconds"] for h in trainer.history]
    report = {
        "weights": cfg.weights, "data": train.data, "imgsz": train.imgsz, "epochs": len(trainer.history),
        "minutes": (time.perf_counter() - start) / 60, "mean_epoch_seconds": sum(epochs) / max(1, len(epochs)),
        "check_qdq": checked.summary(), "results": {k: v.to_dict() for k, v in results.items()},
    }  # fmt: skip
    write_json(run / "report.json", report)
    markdown = table(results)
    with atomic_path(run / "report.md") as tmp:
        tmp.write_text(markdown + "\n")
    print(markdown)
    return report


def _plain(obj):
    """Dataclasses, dicts and tuples as plain YAML/JSON values."""
    if hasattr(obj, "__dataclass_fields__"):
        return _plain(asdict(obj))
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
