"""Subcommands for models out: ``export`` (FP32 ONNX, and its FP16 variant) and ``parity`` (a QDQ ONNX
against its fake-quant model)."""

from __future__ import annotations

from toolchain.config.flags import Command
from toolchain.jobs.export import ExportCommandConfig, run_export
from toolchain.jobs.parity import ParityConfig, run_parity

EXPORT_FLAGS = {"--batch": "export.batch", "--opset": "export.opset", "--dynamic-batch": "export.dynamic_batch",
                "--simplify": "export.simplify"}  # fmt: skip

COMMANDS = [
    Command("export", ExportCommandConfig, run_export, "export a .pt to FP32 ONNX with its sidecar JSON", EXPORT_FLAGS,
            fixed={"export.imgsz": "imgsz: the flag, else the size the weights were trained at"}),
    Command("parity", ParityConfig, run_parity,
            "compare a QDQ ONNX on ONNX Runtime with the fake-quant model it came from"),
]  # fmt: skip
