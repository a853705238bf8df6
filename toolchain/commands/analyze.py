"""The ``analyze`` subcommand: the quantization report of a .pt, FP32 against INT8."""

from __future__ import annotations

from toolchain.config.flags import Command
from toolchain.jobs.analyze import AnalyzeConfig, run_analyze


def _analyze(cfg: AnalyzeConfig) -> None:
    run_analyze(cfg)


COMMANDS = [
    Command("analyze", AnalyzeConfig, _analyze,
            "quantization report of a .pt, FP32 against INT8: convs, sizes, per-layer SQNR, worst layers' ranges",
            {"--opset": "export.opset"}, {"--quant-config": "quant"},
            {"export.imgsz": "imgsz: the flag, else the size the weights were trained at"}),
]  # fmt: skip
