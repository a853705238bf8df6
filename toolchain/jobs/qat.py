"""The ``toolchain qat`` job (``make qat``): FP32 .pt -> PTQ init -> QAT epochs -> best checkpoint ->
QDQ ONNX (checked against TensorRT's rules) -> FP32 / PTQ INT8 / QAT INT8 evaluated through ONNX
Runtime and our evaluator; beside them the FP16 variant of fp32.onnx (``fp32.fp16.onnx``: TensorRT 11 builds
FP16 only from FP16 types, and ``deploy.bench`` needs that float reference). Resumable, at any world size.

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
from toolchain.jobs.fp16_onnx import fp16_onnx_from_onnx
from toolchain.jobs.onnx_files import export_onnx
from toolchain.jobs.prologue import prologue
from toolchain.jobs.ptq import PTQOutputs, QATStart, ptq, qat_start, write_start_outputs
from toolchain.models.checkpoint import load_checkpoint
from toolchain.models.yolo import load_model
from toolchain.quantization.calibration import calibration_batches, resolve_preset
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
from toolchain.training.schedulers import quant_start_epoch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QATJobConfig:
    """Everything ``toolchain qat`` needs.

    Attributes:
        weights: The FP32 .pt: the starting point, and the distillation teacher unless teacher is given; or a
            quantized checkpoint (a QAT run's best.pt, ptq's .int8.pt) to train further from its own ranges
            (its float copy is then the FP32 reference and teacher).
        teacher: An FP32 .pt with the same classes to distil from instead (another size, e.g. a yolov8s for
            a yolov8n student: head outputs matched directly, features through learned 1x1 adapters when
            train.loss.distill_features); needs train.loss.distill > 0.
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
    teacher: ExistingPath | None = None
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
        _check_range_freezing(self)
        _check_stages(self)
        if self.teacher is not None and not self.train.loss.distill > 0:
            raise FieldError("teacher", "a teacher is only used by distillation: set train.loss.distill > 0 "
                             "(e.g. --train.loss.distill 1000), or leave the teacher out")  # fmt: skip

    @property
    def run(self) -> Path:
        """The run folder."""
        return Path(self.project) / self.name


def _check_range_freezing(cfg: QATJobConfig) -> None:
    """``freeze_quant_epoch`` freezes learned (LSQ) ranges: without one it would do nothing, silently."""
    if cfg.qat.freeze_quant_epoch >= 0 and not any(q.learn_amax for _, q in cfg.quant.quantizers()):
        raise FieldError("qat.freeze_quant_epoch", "no quantizer learns its range, so there is nothing to freeze: "
                         "it needs quant.input.learn_amax or quant.weight.learn_amax (or -1: never)")  # fmt: skip


def _check_stages(cfg: QATJobConfig) -> None:
    """Progressive stages agree with the qat schedule's float phase, and every quantizer is on before the
    last epoch (``best.pt`` is taken from fully quantized epochs only)."""
    schedule, start = cfg.train.schedule, quant_start_epoch(cfg.train.schedule)
    if cfg.qat.progressive and start and min(cfg.qat.progressive) != start:
        raise FieldError("qat.progressive", f"the first stage is at epoch {min(cfg.qat.progressive)}, but the qat "
                         f"schedule's float phase (warmup_epochs {schedule.warmup_epochs} + pre_quant "
                         f"{schedule.pre_quant}) ends at epoch {start}: start the first stage there, or set "
                         "train.schedule.pre_quant: 0")  # fmt: skip
    last = max(quantization_stages(cfg), default=0)
    if last >= cfg.train.epochs:
        raise FieldError("train.epochs", f"the run ends before every quantizer is on (from epoch {last}, counted "
                         "from 0) and best.pt is taken from fully quantized epochs: train longer")  # fmt: skip


def quantization_stages(cfg: QATJobConfig) -> dict[int, str]:
    """Start epoch -> regex of the convs whose quantizers turn on then: the progressive stages, else
    everything where the qat schedule's float phase ends (``quant_start_epoch``); empty: all on from the start."""
    if cfg.qat.progressive:
        return dict(cfg.qat.progressive)
    start = quant_start_epoch(cfg.train.schedule)
    return {start: ".*"} if start else {}


def _callbacks(cfg: QATJobConfig, config: dict) -> list:
    train, run = cfg.train, cfg.run
    stages = quantization_stages(cfg)
    callbacks = [ProgressiveQuantization(stages)] if stages else []
    if cfg.sqnr:
        batch = torch.from_numpy(calibration_batches(train.data, train.imgsz, 4, 4, split="val")[0])
        callbacks.append(QuantizationErrorMonitor(batch, run))
    callbacks += [ModelCheckpoint(run / "weights", config), ResultsCSV(run / "results.csv")]
    callbacks.append(TensorBoardLogger(run / "tb"))
    if cfg.patience:
        callbacks.append(EarlyStopping(cfg.patience))
    return callbacks


def _resolved_quant(cfg: QATJobConfig, model: torch.nn.Module, world_size: int) -> QuantConfig:
    """The quant preset resolved to skip overrides on rank 0's calibration images (every rank then places
    the same quantizers, and qat.yaml records what was done)."""
    if cfg.quant.preset == "default":
        return cfg.quant
    t = cfg.train
    batches = calibration_batches(t.data, t.imgsz, cfg.calib_images, t.batch * world_size)
    return resolve_preset(model, cfg.quant, batches, t.device)


def _calibrated_student(cfg: QATJobConfig, origin: QATStart, config: dict, ctx: DistributedContext):
    """The PTQ-calibrated student: calibrated once, on rank 0 (writing fp32.onnx, ptq.int8.onnx, ptq.pt);
    the other ranks place the same quantizers and receive rank 0's ranges.

    Calibration batches hold the effective batch (all ranks' images), as a one-process run with that
    batch would: histogram calibrators depend on how the images are split into batches. Forward-only,
    they take far less memory per image than a training step.
    """
    train, run, teacher = cfg.train, cfg.run, origin.teacher
    outputs = PTQOutputs(run / "ptq.int8.onnx", cfg.export, run / "fp32.onnx", run / "ptq.pt", cfg.weights, config)
    if origin.from_checkpoint:  # every rank loaded the same checkpoint: its ranges, nothing calibrated or sent
        on_main(ctx, "the starting checkpoint's ONNX files", write_start_outputs, origin, outputs)
        return origin.student
    calibrated: list[torch.nn.Module] = []

    def calibrate_on_main() -> dict:
        batches = calibration_batches(train.data, train.imgsz, cfg.calib_images, train.batch * ctx.world_size)
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


def _trainer(cfg: QATJobConfig, origin: QATStart, config: dict, ctx: DistributedContext) -> QATTrainer:
    """A fresh trainer on the PTQ-calibrated student, or the interrupted one from last.pt (every rank
    loads it: the run folder must be on a filesystem every node sees to resume a multi-node job)."""
    train, run = cfg.train, cfg.run
    distill, teacher_name = None, str(cfg.weights)
    if train.loss.distill > 0:
        distill = origin.teacher if cfg.teacher is None else load_model(cfg.teacher)
        teacher_name = str(cfg.teacher or cfg.weights)

    def trainer_of(model: torch.nn.Module) -> QATTrainer:
        return QATTrainer(model, train, cfg.qat, distill, _callbacks(cfg, config), ctx, cfg.distributed, teacher_name)

    last = run / "weights" / "last.pt"
    if cfg.resume:
        if not last.is_file():
            raise ToolchainError(f"{last}: nothing to resume; run without RESUME=1 to start QAT")
        state = load_checkpoint(last)  # tensors and plain data: weights_only, models rebuilt from code
        trainer = trainer_of(state["model"])
        trainer.load_state(state)
        logger.info("Resuming QAT at epoch %d from %s", trainer.start_epoch + 1, last)
        return trainer
    return trainer_of(_calibrated_student(cfg, origin, config, ctx))


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
    loaded, imgsz = prologue(cfg.weights, cfg.train.imgsz, cfg.train.data, run=cfg.run)
    origin = qat_start(loaded, cfg.weights)
    cfg = replace(cfg, train=replace(cfg.train, imgsz=imgsz), export=replace(cfg.export, imgsz=imgsz))
    if not (cfg.resume or origin.from_checkpoint):  # before qat.yaml is written, the same on every rank
        cfg = replace(cfg, quant=on_main(ctx, "the quant preset", _resolved_quant, cfg, origin.teacher, ctx.world_size))
    run, config = cfg.run, record(cfg)
    if ctx.is_main:
        write_record(run / "qat.yaml", cfg, "qat")
    trainer = _trainer(cfg, origin, config, ctx)
    trainer.fit()
    return on_main(ctx, "the export and evaluation of the QAT model", _report, cfg, trainer, config, start)


def _report(cfg: QATJobConfig, trainer: QATTrainer, config: dict, start: float) -> dict:
    """Rank 0: the best checkpoint to a QDQ ONNX, check-qdq, the FP16 ONNX of fp32.onnx, the FP32 / PTQ / QAT table,
    report.json and .md."""
    run, imgsz = cfg.run, cfg.train.imgsz
    if not (run / "weights" / "best.pt").is_file():
        raise ToolchainError(f"{run / 'weights'}: no best.pt: no epoch ran with every quantizer on")
    best = load_model(run / "weights" / "best.pt")
    qat_onnx = export_onnx(best, run / "qat.int8.onnx", cfg.export, "int8", cfg.weights,
                           {**cfg.quant.to_dict(), "qat": config["qat"]}, config)  # fmt: skip
    checked = _check_tensorrt_rules(qat_onnx, cfg.quant)
    fp16_onnx_from_onnx(run / "fp32.onnx")  # fp32.fp16.onnx: the FP16 engine's source on TensorRT 10/11
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
