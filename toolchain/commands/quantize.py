"""Subcommands for quantization: ``ptq`` and ``sensitivity`` (``check-qdq`` is deploy's, see ``cli``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from base.fileio import check_distinct_paths
from toolchain.config.fields import (
    Device,
    ExistingPath,
    FieldError,
    ImageSize,
    NonNegativeInt,
    PositiveInt,
    Writable,
    check_fields,
)
from toolchain.config.files import record, write_record
from toolchain.config.flags import Command
from toolchain.config.tree import replace
from toolchain.export.onnx import ExportConfig
from toolchain.quantization.config import QuantConfig


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


def _ptq(cfg: PTQConfig) -> None:
    from toolchain.commands.export import onnx_outputs
    from toolchain.export.fp16 import fp16_onnx_from_onnx
    from toolchain.models.yolo import check_classes, class_names, load_model_at
    from toolchain.quantization.ptq import PTQOutputs, calibration_batches, ptq

    out = cfg.int8_onnx
    fp32 = out.with_name(out.name.replace(".int8", "")) if cfg.fp32 else None
    written = {**onnx_outputs(out, False), "the calibrated checkpoint": out.with_suffix(".pt")}
    if fp32:
        written |= {f"the FP32 {k}" if k == "--out" else k: v for k, v in onnx_outputs(fp32, cfg.fp16).items()}
    check_distinct_paths(written, {"--weights": cfg.weights, "--data": cfg.data})
    model, imgsz = load_model_at(cfg.weights, cfg.imgsz)
    check_classes(class_names(model), cfg.data, cfg.weights)
    cfg = replace(cfg, imgsz=imgsz, export=replace(cfg.export, imgsz=imgsz))
    outputs = PTQOutputs(out, cfg.export, fp32, out.with_suffix(".pt"), cfg.weights, record(cfg))
    ptq(model, cfg.quant, calibration_batches(cfg.data, imgsz, cfg.num_images, cfg.batch), cfg.device, outputs)
    print(out)
    if fp32:
        print(fp32)
    if cfg.fp16:
        print(fp16_onnx_from_onnx(fp32))


@dataclass(frozen=True)
class SensitivityConfig:
    """``toolchain sensitivity``: mAP lost per fusion group quantized alone; a mixed-precision config.

    Attributes:
        weights: The FP32 .pt.
        data: data.yaml: train images calibrate, val images score.
        imgsz: Calibration and evaluation size (null: the size the weights were trained at).
        val_images: Val images each group is scored on (0: all).
        calib_images: Calibration images.
        keep_float: Write <out>/quant.mixed.yaml keeping the k most sensitive groups float (0: none).
        out: Folder of sensitivity.csv, sensitivity.png and sensitivity.yaml (this config).
        device: Where calibration and evaluation run.
        quant: Quantization settings (also the base of the mixed-precision config).
    """

    weights: ExistingPath
    data: ExistingPath
    imgsz: ImageSize | None = None
    val_images: NonNegativeInt = 64
    calib_images: PositiveInt = 128
    keep_float: NonNegativeInt = 0
    out: Annotated[str, Writable()] = "runs/sensitivity"
    device: Device = "cpu"
    quant: QuantConfig = QuantConfig()

    def __post_init__(self) -> None:
        check_fields(self)


def _sensitivity(cfg: SensitivityConfig) -> None:
    from base.dataset import load_data_yaml, load_split
    from toolchain.models.yolo import check_classes, class_names, load_model_at
    from toolchain.quantization.ptq import calibration_batches, ptq
    from toolchain.quantization.sensitivity import layer_sensitivity, write_mixed_precision_config, write_sensitivity

    written = ("sensitivity.yaml", "sensitivity.csv", "sensitivity.png", "quant.mixed.yaml")
    check_distinct_paths([("--out", Path(cfg.out) / name) for name in written], {"--weights": cfg.weights,
                                                                                 "--data": cfg.data})  # fmt: skip
    model, imgsz = load_model_at(cfg.weights, cfg.imgsz)
    check_classes(class_names(model), cfg.data, cfg.weights)
    cfg = replace(cfg, imgsz=imgsz)
    write_record(Path(cfg.out) / "sensitivity.yaml", cfg, "sensitivity")
    student, _ = ptq(model, cfg.quant, calibration_batches(cfg.data, imgsz, cfg.calib_images), cfg.device)
    split = load_split(load_data_yaml(cfg.data), "val", limit=cfg.val_images or None)
    rows = layer_sensitivity(student, split, imgsz, cfg.device)
    csv_path, png_path = write_sensitivity(rows, cfg.out)
    for i, r in enumerate(rows[:10], 1):
        print(f"{i:>3}. -{100 * r.loss:5.2f} points  {', '.join(r.group)}")
    print(f"{csv_path}\n{png_path}")
    if cfg.keep_float:
        print(write_mixed_precision_config(rows, cfg.keep_float, cfg.quant, Path(cfg.out) / "quant.mixed.yaml"))


QUANT_FILE = {"--quant-config": "quant"}
COMMANDS = [
    Command("ptq", PTQConfig, _ptq, "calibrate a .pt (PTQ) and export its QDQ ONNX",
            {"--opset": "export.opset", "--dynamic-batch": "export.dynamic_batch"}, QUANT_FILE,
            {"export.imgsz": "imgsz: the flag, else the size the weights were trained at"}),
    Command("sensitivity", SensitivityConfig, _sensitivity,
            "mAP lost per fusion group quantized alone; mixed precision", files=QUANT_FILE),
]  # fmt: skip
