"""Measurements for ``make gpu-check`` that need no orchestration: output errors the way Polygraphy reports
them, trtexec's GPU compute time, and the memory a model takes in a process of its own."""

from __future__ import annotations

import re
from pathlib import Path

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


def probe_memory(model: str, backend: str, cuda: str, runs: int = 20) -> dict:
    """In this (fresh) process: peak host RSS and device memory taken by loading and running ``model``."""
    from deploy.runtime import create_runner

    free = _gpu_free_bytes(cuda) if backend == "tensorrt" else None
    base = _high_water_mib()
    with create_runner(model, backend, cuda=cuda) as runner:
        x = np.zeros((1, *runner.input_shape[1:]), np.float32)
        for _ in range(runs):
            runner.infer(x)
        gpu = (free - _gpu_free_bytes(cuda)) / 2**20 if free is not None else None  # Jetson: unified memory
    return {"peak_rss_mib": _high_water_mib(), "model_rss_mib": _high_water_mib() - base, "gpu_mib": gpu,
            "file_mib": Path(model).stat().st_size / 2**20}  # fmt: skip


def _high_water_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _gpu_free_bytes(cuda: str) -> int:
    """Free device memory, asked with the device's primary context current (the context the runner uses)."""
    from deploy.engine.cuda import open_cuda

    gpu = open_cuda(cuda)
    try:
        with gpu.activate():
            if cuda == "cuda-python":
                from deploy.engine.trt import import_cuda_python

                err, free, _total = import_cuda_python()[0].cudaMemGetInfo()
                if int(err) != 0:
                    raise RuntimeError(f"cudaMemGetInfo failed: {err}")
                return int(free)
            import pycuda.driver as drv

            return int(drv.mem_get_info()[0])
    finally:
        gpu.close()
