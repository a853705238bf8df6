"""The ``toolchain export`` job: a .pt to FP32 ONNX with its sidecar JSON, and its FP16 variant.

Example:
    >>> run_export(ExportCommandConfig(weights="runs/baseline/weights/best.pt", fp16=True))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from toolchain.config.fields import ExistingPath, ImageSize, Writable, check_fields
from toolchain.config.files import record
from toolchain.config.tree import replace
from toolchain.export.onnx import ExportConfig
from toolchain.jobs.fp16_onnx import fp16_onnx_from_onnx
from toolchain.jobs.onnx_files import export_onnx, onnx_outputs
from toolchain.jobs.prologue import prologue


@dataclass(frozen=True)
class ExportCommandConfig:
    """``toolchain export``: a .pt to FP32 ONNX with its sidecar JSON.

    Attributes:
        weights: The .pt checkpoint.
        out: ONNX path (null: beside the weights, <weights>.onnx).
        imgsz: Input size (null: the size the weights were trained at).
        fp16: Also write <name>.fp16.onnx for FP16 engines on strongly typed TensorRT (10.x/11.x).
        export: Export settings (batch, opset, dynamic batch, simplifier).
    """

    weights: ExistingPath
    out: Annotated[str, Writable((".onnx",))] | None = None
    imgsz: ImageSize | None = None
    fp16: bool = False
    export: ExportConfig = ExportConfig()

    def __post_init__(self) -> None:
        check_fields(self)


def run_export(cfg: ExportCommandConfig) -> None:
    """Export the weights at their size (or ``imgsz``) and print the written path(s)."""
    out = Path(cfg.out or Path(cfg.weights).with_suffix(".onnx"))
    model, imgsz = prologue(cfg.weights, cfg.imgsz, outputs=onnx_outputs(out, cfg.fp16))
    cfg = replace(cfg, imgsz=imgsz, export=replace(cfg.export, imgsz=imgsz))
    print(export_onnx(model, out, cfg.export, source=cfg.weights, config=record(cfg)))
    if cfg.fp16:
        print(fp16_onnx_from_onnx(out))
