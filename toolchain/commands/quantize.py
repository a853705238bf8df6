"""Subcommands for quantization: ``ptq`` and ``sensitivity`` (``check-qdq`` is deploy's, see ``cli``)."""

from __future__ import annotations

from toolchain.config.flags import Command
from toolchain.jobs.ptq import PTQConfig, run_ptq
from toolchain.jobs.sensitivity import SensitivityConfig, run_sensitivity

QUANT_FILE = {"--quant-config": "quant"}
COMMANDS = [
    Command("ptq", PTQConfig, run_ptq, "calibrate a .pt (PTQ) and export its QDQ ONNX",
            {"--opset": "export.opset", "--dynamic-batch": "export.dynamic_batch"}, QUANT_FILE,
            {"export.imgsz": "imgsz: the flag, else the size the weights were trained at"}),
    Command("sensitivity", SensitivityConfig, run_sensitivity,
            "mAP lost per fusion group quantized alone; mixed precision", files=QUANT_FILE),
]  # fmt: skip
