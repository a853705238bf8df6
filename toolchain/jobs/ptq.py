"""The ``toolchain ptq`` job, and the start of QAT: quantize a copy, calibrate it on training images
(``toolchain.quantization.calibration``), write the FP32 and INT8 QDQ ONNX and the calibrated checkpoint;
or, from a quantized checkpoint (``qat_start``), keep its quantizers and ranges and write the same files of it.

``toolchain ptq`` and the QAT job call ``ptq``; sensitivity analysis and ``benchmarks/qat_epoch.py``, which
write none of these files, call ``calibrated_model`` itself. ``toolchain ptq`` refuses a quantized
checkpoint (it would quantize the quantized model again): ``toolchain qat --weights`` trains one further.

Example:
    >>> run_ptq(PTQConfig(weights="best.pt", data="data.yaml", fp32=True))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
from torch import nn

from base.errors import ToolchainError
from toolchain.config.fields import Device, ExistingPath, FieldError, ImageSize, PositiveInt, Writable, check_fields
from toolchain.config.files import record
from toolchain.config.tree import replace
from toolchain.export.onnx import ExportConfig
from toolchain.jobs.fp16_onnx import fp16_onnx_from_onnx
from toolchain.jobs.onnx_files import export_onnx, onnx_outputs
from toolchain.jobs.prologue import prologue
from toolchain.models.checkpoint import save_checkpoint
from toolchain.quantization.calibration import calibrated_model, calibration_batches, resolve_preset
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.placement import PlacementReport, float_copy, placement_of
from toolchain.quantization.quantized_model import is_quantized, quantizers

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PTQOutputs:
    """What ``ptq`` writes; ``None`` paths are skipped.

    Attributes:
        int8_onnx: The QDQ ONNX.
        export: Its export settings (also those of the FP32 ONNX).
        fp32_onnx: The FP32 ONNX of the model before quantization.
        checkpoint: The calibrated fake-quant model (``.pt``), for parity checks and QAT.
        source: The checkpoint the model came from (recorded in the sidecars).
        config: The resolved config of the command (recorded in sidecars and checkpoint).
    """

    int8_onnx: Path | None
    export: ExportConfig
    fp32_onnx: Path | None = None
    checkpoint: Path | None = None
    source: str = ""
    config: dict | None = None


def ptq(
    model: nn.Module, quant: QuantConfig, batches: list[np.ndarray], device: str, outputs: PTQOutputs
) -> tuple[nn.Module, PlacementReport]:
    """``quantization.calibration.calibrated_model`` (its arguments and return value; the preset resolved
    first, and recorded resolved), then write ``outputs``: the FP32 and INT8 ONNX files and the calibrated
    checkpoint that are set."""
    quant = resolve_preset(model, quant, batches, device)
    student, placement = calibrated_model(model, quant, batches, device)
    write_ptq_outputs(model, student, quant.to_dict(), placement, outputs)
    return student, placement


def write_ptq_outputs(
    model: nn.Module, student: nn.Module, quant: dict, placement: PlacementReport, outputs: PTQOutputs
) -> None:
    """The FP32 ONNX of ``model``, and the INT8 ONNX and checkpoint of ``student``, those of ``outputs`` set.

    Args:
        model: The float model.
        student: Its fake-quant model.
        quant: The quant config that made ``student`` (plain form), recorded in the sidecar and checkpoint.
        placement: ``student``'s placement (its summary goes in the sidecar).
        outputs: The files to write.
    """
    o = outputs
    if o.fp32_onnx:
        export_onnx(model, o.fp32_onnx, o.export, source=o.source, config=o.config)
    if o.int8_onnx:
        meta = {**quant, "placement": placement.summary()}
        export_onnx(student, o.int8_onnx, o.export, "int8", o.source, meta, o.config)
    if o.checkpoint:
        save_checkpoint(o.checkpoint, student.cpu(), o.export.imgsz, o.config, quant_config=quant)


@dataclass(frozen=True)
class QATStart:
    """What QAT starts from, given the model of ``--weights`` (``qat_start``).

    Attributes:
        teacher: The FP32 model: the distillation teacher and the FP32 ONNX of the run.
        student: A quantized checkpoint's own model (ptq's or qat's), quantizers and ranges as saved, to
            train further without calibrating; ``None``: FP32 weights, calibrated first (``ptq``).
    """

    teacher: nn.Module
    student: nn.Module | None = None

    @property
    def from_checkpoint(self) -> bool:
        """Whether QAT continues a quantized checkpoint (no calibration)."""
        return self.student is not None


def qat_start(model: nn.Module, weights: str | Path) -> QATStart:
    """Where QAT starts: FP32 weights are the teacher and are calibrated (``ptq``); a quantized checkpoint
    (a QAT run's ``best.pt``, a ``ptq.pt``) is the student as it is, ranges kept (no calibration, the quant
    config's placement and calibrators are not applied), and its float copy (``placement.float_copy``: the
    same weights, quantizers off, as a separate model) is the teacher.

    Args:
        model: The model of ``weights`` (``prologue``).
        weights: Its path, for messages.

    Raises:
        ToolchainError: The checkpoint is quantized, but none of its quantizers has a range.
    """
    if not is_quantized(model):
        return QATStart(model)
    qs = quantizers(model)
    if not any(q.is_calibrated for q in qs):
        raise ToolchainError(
            f"--weights {weights}: quantized, but none of its {len(qs)} quantizers has a range (never calibrated); "
            "pass the FP32 .pt to calibrate it, or the checkpoint ptq wrote"
        )
    logger.info("QAT continues %s: %s, %d quantizers keep their ranges (not calibrated again; the quant config's "
                "placement and calibrators are not applied); the teacher is its float copy",
                weights, placement_of(model).summary(), len(qs))  # fmt: skip
    return QATStart(float_copy(model), model)


def write_start_outputs(start: QATStart, outputs: PTQOutputs) -> None:
    """For a QAT that continues a quantized checkpoint, the files ``ptq`` writes for one that calibrates:
    the FP32 ONNX of the teacher, the INT8 ONNX and checkpoint of the student as it starts (the baseline
    the QAT report compares with)."""
    assert start.student is not None, "write_start_outputs: the start is FP32 weights; ptq writes these files"
    quant = {"continued_from": outputs.source}
    write_ptq_outputs(start.teacher, start.student, quant, placement_of(start.student), outputs)


@dataclass(frozen=True)
class PTQConfig:
    """``toolchain ptq``: calibrate a .pt (PTQ) and export its QDQ ONNX.

    Attributes:
        weights: The FP32 .pt checkpoint.
        data: data.yaml whose train images calibrate.
        imgsz: Calibration and export size (null: the size the weights were trained at).
        num_images: Calibration images.
        batch: Calibration batch size.
        device: Where calibration runs.
        out: QDQ ONNX path (null: runs/ptq/<weights name>.int8.onnx); the calibrated .pt goes beside it.
        fp32: Also export the FP32 ONNX beside it (its name without .int8), at the same size.
        fp16: Also write the FP32 ONNX's <name>.fp16.onnx for FP16 engines on strongly typed TensorRT
            (10.x/11.x); needs fp32.
        quant: Quantization settings.
        export: ONNX export settings of both files.
    """

    weights: ExistingPath
    data: ExistingPath
    imgsz: ImageSize | None = None
    num_images: PositiveInt = 256
    batch: PositiveInt = 16
    device: Device = "cpu"
    out: Annotated[str, Writable((".onnx",))] | None = None
    fp32: bool = False
    fp16: bool = False
    quant: QuantConfig = QuantConfig()
    export: ExportConfig = ExportConfig()

    def __post_init__(self) -> None:
        check_fields(self)
        out = self.out
        if out is not None and ".int8" not in Path(out).name and self.fp32:
            raise FieldError("out", "with fp32 the name must contain .int8 (the FP32 ONNX is the name without it)")
        if self.fp16 and not self.fp32:
            raise FieldError("fp16", "needs fp32: true (the FP16 ONNX is converted from the FP32 one)")
        try:
            self.quant.check_exportable()
        except FieldError as exc:
            raise exc.within("quant") from None

    @property
    def int8_onnx(self) -> Path:
        """The QDQ ONNX path."""
        return Path(self.out or Path("runs/ptq") / f"{Path(self.weights).stem}.int8.onnx")


def run_ptq(cfg: PTQConfig) -> None:
    """Calibrate, write the QDQ ONNX, the calibrated .pt (and the FP32 / FP16 ONNX), print their ONNX paths."""
    out = cfg.int8_onnx
    fp32 = out.with_name(out.name.replace(".int8", "")) if cfg.fp32 else None
    written = {**onnx_outputs(out, False), "the calibrated checkpoint": out.with_suffix(".pt")}
    if fp32:
        written |= {f"the FP32 {k}" if k == "--out" else k: v for k, v in onnx_outputs(fp32, cfg.fp16).items()}
    model, imgsz = prologue(cfg.weights, cfg.imgsz, cfg.data, written, fp32_only=True)
    batches = calibration_batches(cfg.data, imgsz, cfg.num_images, cfg.batch)
    quant = resolve_preset(model, cfg.quant, batches, cfg.device)  # recorded resolved: a rerun places the same
    cfg = replace(cfg, imgsz=imgsz, export=replace(cfg.export, imgsz=imgsz), quant=quant)
    outputs = PTQOutputs(out, cfg.export, fp32, out.with_suffix(".pt"), cfg.weights, record(cfg))
    ptq(model, cfg.quant, batches, cfg.device, outputs)
    print(out)
    if fp32:
        print(fp32)
    if cfg.fp16:
        print(fp16_onnx_from_onnx(fp32))
