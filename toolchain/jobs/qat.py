"""The ``toolchain qat`` job (``make qat``): FP32 .pt -> PTQ init -> QAT epochs -> best checkpoint ->
QDQ ONNX (checked against TensorRT's rules) -> FP32 / PTQ INT8 / QAT INT8 evaluated through ONNX
Runtime and our evaluator. Resumable, at any world size.

One process, or one rank of a ``torchrun`` job (``torchrun --nproc-per-node 4 -m toolchain.cli qat ...``):
every rank loads the weights; rank 0 calibrates and the others receive its ranges; every rank
trains on its shard; rank 0 writes the resolved config, checkpoints, logs, the QDQ ONNX and the
report while the others wait for it (``toolchain.distributed``).

Example:
    >>> report = run_qat(QATJobConfig(weights="best.pt", train=TrainConfig(data="data.yaml")))
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch

from base.errors import ToolchainError
from base.fileio import atomic_path, write_json
from deploy.qdq.rules import check_qdq
from toolchain.config.fields import ExistingPath, FieldError, NonNegativeInt, PositiveInt, Writable, check_fields
from toolchain.config.files import record, write_record
from toolchain.config.tree import replace
from toolchain.distributed.config import DistributedConfig
from toolchain.distributed.model import load_quantizer_ranges, quantizer_ranges
from toolchain.distributed.process import DistributedContext, collective_errors, init_distributed, on_main, shutdown
from toolchain.export.onnx import ExportConfig
from toolchain.jobs.onnx_files import export_onnx
from toolchain.jobs.prologue import prologue
from toolchain.jobs.ptq import PTQOutputs, ptq
from toolchain.models.checkpoint import load_checkpoint
from toolchain.models.yolo import load_model
from toolchain.quantization.calibration import calibration_batches
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.placement import quantize_model
from toolchain.training.callbacks import (
    EarlyStopping,
    ModelCheckpoint,
    ProgressiveQuantization,
    QuantizationErrorMonitor,
    ResultsCSV,
    TensorBoardLogger,
)
from toolchain.training.config import TrainConfig
from toolchain.training.qat_report import accuracy_report
from toolchain.training.qat_trainer import QATConfig, QATTrainer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QATJobConfig:
    """Everything ``toolchain qat`` needs.

    Attributes:
        weights: The FP32 .pt: the starting point and the distillation teacher.
        train: Training settings (data, epochs, optimizer, schedule, loss...).
        qat: What QAT adds: BatchNorm and range freezing, progressive quantization.
        quant: Quantization settings (placement, calibrators).
        export: ONNX export of fp32.onnx, ptq.int8.onnx and qat.int8.onnx (their size is train.imgsz).
        distributed: A torchrun job's backend, timeout and learning-rate scaling (one process: lr rule only).
        calib_images: Train images for the PTQ calibration that starts QAT.
        patience: Early stopping patience in epochs (0: off).
        sqnr: Write the per-layer SQNR CSV and plot each epoch.
        project: Folder of the QAT runs.
        name: Run name: the run folder is <project>/<name>.
        resume: Continue the interrupted run of this name from its weights/last.pt.
    """

    weights: ExistingPath
    train: TrainConfig
    qat: QATConfig = QATConfig()
    quant: QuantConfig = QuantConfig()
    export: ExportConfig = ExportConfig()
    distributed: DistributedConfig = DistributedConfig()
    calib_images: PositiveInt = 256
    patience: NonNegativeInt = 0
    sqnr: bool = True
    project: Annotated[str, Writable()] = "runs/qat"
    name: str = "qat"
    resume: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        try:
            self.quant.check_exportable()  # QAT ends in a QDQ ONNX: say so before the epochs
        except FieldError as exc:
            raise exc.within("quant") from None

    @property
    def run(self) -> Path:
        """The run folder."""
        return Path(self.project) / self.name


def _callbacks(cfg: QATJobConfig, config: dict) -> list:
    train, run = cfg.train, cfg.run
    stages = dict(cfg.qat.progressive)
    if not stages and train.schedule.name == "qat" and train.schedule.pre_quant > 0:
        stages = {train.schedule.pre_quant: ".*"}  # float epochs first, then everything quantized
    callbacks = [ProgressiveQuantization(stages)] if stages else []
    if cfg.sqnr:
        batch = torch.from_numpy(calibration_batches(train.data, train.imgsz, 4, 4, split="val")[0])
        callbacks.append(QuantizationErrorMonitor(batch, run))
    callbacks += [ModelCheckpoint(run / "weights", config), ResultsCSV(run / "results.csv")]
    callbacks.append(TensorBoardLogger(run / "tb"))
    if cfg.patience:
        callbacks.append(EarlyStopping(cfg.patience))
    return callbacks


def _calibrated_student(cfg: QATJobConfig, teacher: torch.nn.Module, config: dict, ctx: DistributedContext):
    """The PTQ-calibrated student: calibrated once, on rank 0 (writing fp32.onnx, ptq.int8.onnx, ptq.pt);
    the other ranks place the same quantizers and receive rank 0's ranges.

    Calibration batches hold the effective batch (all ranks' images), as a one-process run with that
    batch would: histogram calibrators depend on how the images are split into batches. Forward-only,
    they take far less memory per image than a training step.
    """
    train, run = cfg.train, cfg.run
    calibrated: list[torch.nn.Module] = []

    def calibrate_on_main() -> dict:
        batches = calibration_batches(train.data, train.imgsz, cfg.calib_images, train.batch * ctx.world_size)
        outputs = PTQOutputs(run / "ptq.int8.onnx", cfg.export, run / "fp32.onnx", run / "ptq.pt", cfg.weights, config)
        student, _ = ptq(teacher, cfg.quant, batches, train.device, outputs)
        calibrated.append(student)
        return quantizer_ranges(student)

    ranges = on_main(ctx, "PTQ calibration", calibrate_on_main)
    if calibrated:
        return calibrated[0]
    student = copy.deepcopy(teacher)
    quantize_model(student, cfg.quant)
    load_quantizer_ranges(student, ranges)
    return student


def _trainer(cfg: QATJobConfig, teacher: torch.nn.Module, config: dict, ctx: DistributedContext) -> QATTrainer:
    """A fresh trainer on the PTQ-calibrated student, or the interrupted one from last.pt (every rank
    loads it: the run folder must be on a filesystem every node sees to resume a multi-node job)."""
    train, run = cfg.train, cfg.run
    distill = teacher if train.loss.distill > 0 else None

    def trainer_of(model: torch.nn.Module) -> QATTrainer:
        return QATTrainer(model, train, cfg.qat, distill, _callbacks(cfg, config), ctx, cfg.distributed)

    last = run / "weights" / "last.pt"
    if cfg.resume:
        if not last.is_file():
            raise ToolchainError(f"{last}: nothing to resume; run without RESUME=1 to start QAT")
        state = load_checkpoint(last)  # tensors and plain data: weights_only, models rebuilt from code
        trainer = trainer_of(state["model"])
        trainer.load_state(state)
        logger.info("Resuming QAT at epoch %d from %s", trainer.start_epoch + 1, last)
        return trainer
    return trainer_of(_calibrated_student(cfg, teacher, config, ctx))


def run_qat(cfg: QATJobConfig) -> dict:
    """Run (or resume) the whole QAT job; returns the report written to ``<run>/report.json``.

    The resolved config (``train.imgsz`` and ``export.imgsz`` set from the weights) is written to
    ``<run>/qat.yaml`` and into every checkpoint, sidecar and report of the run. Under torchrun every
    rank runs this and returns the report; a rank that dies or hangs ends the others with one line
    (``RankLostError``) within ``distributed.timeout_s``.
    """
    ctx = init_distributed(cfg.distributed, cfg.train.device)
    try:
        with collective_errors(ctx, "the QAT job"):
            return _run(cfg, ctx)
    finally:
        shutdown(ctx)


def _run(cfg: QATJobConfig, ctx: DistributedContext) -> dict:
    start = time.perf_counter()
    teacher, imgsz = prologue(cfg.weights, cfg.train.imgsz, cfg.train.data, run=cfg.run)
    cfg = replace(cfg, train=replace(cfg.train, imgsz=imgsz), export=replace(cfg.export, imgsz=imgsz))
    run, config = cfg.run, record(cfg)
    if ctx.is_main:
        write_record(run / "qat.yaml", cfg, "qat")
    trainer = _trainer(cfg, teacher, config, ctx)
    trainer.fit()
    return on_main(ctx, "the export and evaluation of the QAT model", _report, cfg, trainer, config, start)


def _report(cfg: QATJobConfig, trainer: QATTrainer, config: dict, start: float) -> dict:
    """Rank 0: the best checkpoint to a QDQ ONNX, check-qdq, the FP32 / PTQ / QAT table, report.json and .md."""
    run, imgsz = cfg.run, cfg.train.imgsz
    best = load_model(run / "weights" / "best.pt")
    qat_onnx = export_onnx(best, run / "qat.int8.onnx", cfg.export, "int8", cfg.weights,
                           {**cfg.quant.to_dict(), "qat": config["qat"]}, config)  # fmt: skip
    checked = _check_tensorrt_rules(qat_onnx, cfg.quant)
    paths = {"FP32": run / "fp32.onnx", "PTQ INT8": run / "ptq.int8.onnx", "QAT INT8": qat_onnx}
    accuracy = accuracy_report(paths, cfg.train.data)  # on test when data.yaml has one: best.pt was picked on val
    epochs = [h["train_seconds"] for h in trainer.history]
    report = {
        "weights": cfg.weights, "data": cfg.train.data, "imgsz": imgsz, "epochs": len(trainer.history),
        "minutes": (time.perf_counter() - start) / 60, "mean_epoch_seconds": sum(epochs) / max(1, len(epochs)),
        "check_qdq": checked, "results": {k: v.to_dict() for k, v in accuracy.results.items()},
        **accuracy.to_dict(), "distributed": _distributed_summary(trainer), "config": config,
    }  # fmt: skip
    write_json(run / "report.json", report)
    markdown = accuracy.markdown()
    with atomic_path(run / "report.md") as tmp:
        tmp.write_text(markdown + "\n")
    print(markdown)
    return report


def _distributed_summary(trainer: QATTrainer) -> dict:
    """How the run was split: processes, backend, batches and the learning rate they got."""
    rate, ctx = trainer.rate, trainer.dist
    return {"world_size": ctx.world_size, "backend": ctx.backend or "none (one process)",
            "batch_per_process": rate.batch, "effective_batch": rate.effective_batch, "lr": rate.lr,
            "lr0": rate.lr0, "lr_scaling": rate.rule, "base_batch": rate.base_batch}  # fmt: skip


def _check_tensorrt_rules(onnx: Path, quant: QuantConfig) -> str:
    """check-qdq's summary of the QAT ONNX for a TensorRT target (violations are an error)."""
    if quant.target != "tensorrt":
        return f"not checked: quant.target is {quant.target}, TensorRT's Q/DQ rules do not apply"
    checked = check_qdq(onnx)
    if not checked.ok:
        raise ToolchainError(f"{onnx}: check-qdq found violations:\n{checked.summary()}")
    logger.info("check-qdq: %s", checked.summary())
    return checked.summary()
