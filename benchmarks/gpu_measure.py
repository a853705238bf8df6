"""Measurements for ``make gpu-check`` that need no orchestration: output errors the way Polygraphy reports
them, and trtexec's GPU compute time (memory: ``benchmarks/probe.py --memory``, as every benchmark)."""

from __future__ import annotations

import re

import numpy as np


def output_errors(ours: np.ndarray, reference: np.ndarray) -> dict:
    """Absolute and relative error of ``ours`` against ``reference``, the statistics Polygraphy reports
    (relative error divides by ``|reference|``, zeros raised to 2.2e-16 as Polygraphy does)."""
    try:
        from polygraphy.comparator import CompareFunc
        from polygraphy.comparator.struct import IterationResult
        from polygraphy.logger import G_LOGGER
    except ImportError:
        return _output_errors_numpy(ours, reference)
    G_LOGGER.module_severity = G_LOGGER.CRITICAL
    ours, reference = np.ascontiguousarray(ours), np.ascontiguousarray(reference)  # Polygraphy views the memory
    result = CompareFunc.simple()(IterationResult({"out": ours}, runner_name="ours"),
                                  IterationResult({"out": reference}, runner_name="reference"))["out"]  # fmt: skip
    return {"max_abs": result.max_absdiff, "max_rel": result.max_reldiff, "mean_abs": result.mean_absdiff,
            "median_abs": result.median_absdiff, "median_rel": result.median_reldiff, "by": "polygraphy"}  # fmt: skip


def _output_errors_numpy(ours: np.ndarray, reference: np.ndarray) -> dict:
    ref = reference.astype(np.float64)
    absdiff = np.abs(ours.astype(np.float64) - ref)
    denominator = np.abs(np.where(ref == 0, 2.220446049250313e-16, ref))
    reldiff = absdiff / denominator
    return {"max_abs": float(absdiff.max()), "max_rel": float(reldiff.max()), "mean_abs": float(absdiff.mean()),
            "median_abs": float(np.median(absdiff)), "median_rel": float(np.median(reldiff)),
            "by": "numpy"}  # fmt: skip


def parse_trtexec(text: str) -> dict:
    """``GPU Compute Time: min = 0.2 ms, max = ..., mean = ..., median = ..., percentile(99%) = ...`` -> ms values."""
    line = next((ln for ln in text.splitlines() if "GPU Compute Time:" in ln), None)
    if line is None:
        raise RuntimeError("trtexec printed no 'GPU Compute Time' line")
    pairs = re.findall(r"(\w+(?:\(\d+(?:\.\d+)?%\))?) = ([\d.]+) ms", line.split("GPU Compute Time:", 1)[1])
    return {k.replace("percentile(", "p").rstrip("%)"): float(v) for k, v in pairs}
