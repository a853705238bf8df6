"""The ``toolchain ptq`` job, and the PTQ that starts QAT: quantize a copy, calibrate it on training images
(``toolchain.quantization.calibration``), write the FP32 and INT8 QDQ ONNX and the calibrated checkpoint.

``toolchain ptq`` and the QAT job call ``ptq``; sensitivity analysis and ``benchmarks/qat_epoch.py``, which
write none of these files, call ``calibrated_model`` itself.

Example:
    >>> run_ptq(PTQConfig(weights="best.pt", data="data.yaml", fp32=True))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
from torch import nn

from toolchain.config.fields import Device, ExistingPath, FieldError, ImageSize, PositiveInt, Writable, check_fields
from toolchain.config.files import record
from toolchain.config.tree import replace
from toolchain.export.onnx import ExportConfig
from toolchain.jobs.fp16_onnx import fp16_onnx_from_onnx
from toolchain.jobs.onnx_files import export_onnx, onnx_outputs
from toolchain.jobs.prologue import prologue
from toolchain.models.checkpoint import save_checkpoint
from toolchain.quantization.calibration import calibrated_model, calibration_batches
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.placement import PlacementReport


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
    """``quantization.calibration.calibrated_model`` (its arguments and return value), then write ``outputs``:
    the FP32 and INT8 ONNX files and the calibrated checkpoint that are set."""
    student, placement = calibrated_model(model, quant, batches, device)
    o = outputs
    if o.fp32_onnx:
        export_onnx(model, o.fp32_onnx, o.export, source=o.source, config=o.config)
    if o.int8_onnx:
        meta = {**quant.to_dict(), "placement": placement.summary()}
        export_onnx(student, o.int8_onnx, o.export, "int8", o.source, meta, o.config)
    if o.checkpoint:
        save_checkpoint(o.checkpoint, student.cpu(), o.export.imgsz, o.config, quant_config=quant.to_dict())
    return student, placement


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
    model, imgsz = prologue(cfg.weights, cfg.imgsz, cfg.data, written)
    cfg = replace(cfg, imgsz=imgsz, export=replace(cfg.export, imgsz=imgsz))
    outputs = PTQOutputs(out, cfg.export, fp32, out.with_suffix(".pt"), cfg.weights, record(cfg))
    ptq(model, cfg.quant, calibration_batches(cfg.data, imgsz, cfg.num_images, cfg.batch), cfg.device, outputs)
    print(out)
    if fp32:
        print(fp32)
    if cfg.fp16:
        print(fp16_onnx_from_onnx(fp32))
