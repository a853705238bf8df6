"""What ``deploy.bench`` measures on each row, and ``make gpu-check`` on each engine: latency and throughput
of the engine alone, the ``deploy/infer.py`` pipeline, peak memory, mAP with paired bootstrap intervals, and
the layer report.

Example:
    >>> with backend.open(Path(row.model)) as runner:
    ...     engine_latency(runner, runs=100, warmup=10, batch=1)["p50"]
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from base.dataset import Split
from base.errors import ToolchainError
from base.metadata import ModelMetadata
from deploy.bench.backends import EngineBackend
from deploy.bench.memory import peak_memory
from deploy.bench.pipeline import pipeline_summary
from deploy.bench.rows import EngineRow
from deploy.bench.timing import summarize, time_block
from deploy.bootstrap import Resamples
from deploy.evaluate import evaluate
from deploy.qdq.rules import check_qdq
from deploy.runtime.base import Runner

logger = logging.getLogger(__name__)
NO_ENGINE = "n/a: no TensorRT engine"


def engine_latency(runner: Runner, runs: int, warmup: int, batch: int = 1) -> dict:
    """``runs`` timed inferences of one fixed ``batch`` (after ``warmup``): p50, p99 ms and images/s at p50."""
    stats = summarize(time_block(runner, runs, warmup, batch), batch)
    return {"p50": stats["p50"], "p99": stats["p99"], "runs": stats["runs"], "batch": batch,
            "images_per_s": 1000 * batch / stats["p50"]}  # fmt: skip


def row_latency(runner: Runner, row: EngineRow, runs: int, warmup: int) -> None:
    """Batch 1, and the profile's max batch (a tenth of the runs) where it is over 1."""
    row.latency = {"batch1": engine_latency(runner, runs, warmup)}
    if row.batch > 1:
        row.latency["batchN"] = engine_latency(runner, max(5, runs // 10), max(1, warmup // 2), row.batch)


def row_pipeline(runner: Runner, row: EngineRow, video: Path) -> None:
    """The pipelined ``deploy/infer.py`` loop over ``video``: one frame at a time (batch 1)."""
    summary = pipeline_summary(runner, video).to_dict()
    row.pipeline = {"fps": summary["fps"], "model_fps": summary["model_fps"], "frames": summary["frames"],
                    "dropped": summary["dropped"], "inference": summary["stages"].get("inference", {})}  # fmt: skip


def row_memory(row: EngineRow, backend: EngineBackend, runs: int = 20) -> None:
    """Peak host RSS and GPU memory of the row's model, loaded and run in a fresh process."""
    if backend.memory is not None:
        row.memory = backend.memory(Path(row.model), row.name)
    else:
        row.memory = peak_memory(row.model, backend.name, row.name, backend.cuda, runs)
    if row.memory.get("gpu_mib") is None:
        row.memory["gpu_note"] = "n/a: CPU stand-in, no GPU" if backend.standin else "n/a: not measured"


def row_accuracy(runner: Runner, row: EngineRow, split: Split, boot: Resamples) -> None:
    """mAP of the row on ``split``; its matches go into ``boot`` for the paired intervals."""
    result = evaluate(runner, split)
    boot.add(row.name, result.matches)
    row.accuracy = {"map50_95": result.map50_95, "map50": result.map50, "images": result.images,
                    "interval": list(boot.interval(row.name))}  # fmt: skip


def differences(rows: list[EngineRow], boot: Resamples) -> None:
    """Each row's mAP50-95 against FP32's (and QAT's against PTQ's): paired bootstrap over the same images."""
    scored = {r.name: r for r in rows if r.accuracy}
    pairs = [(n, "FP32") for n in scored if n != "FP32"] + [("INT8 QAT", "INT8 PTQ")]
    for a, b in pairs:
        if a in scored and b in scored:
            scored[a].accuracy.setdefault("differences", {})[b] = boot.difference(a, b).to_dict()


def row_layers(row: EngineRow, backend: EngineBackend) -> None:
    """The engine sidecar's layer report (``extra["layers"]``, written by ``deploy.engine.build``); with ONNX
    Runtime standing in, the convs the ONNX's Q/DQ make INT8, as an estimate of what TensorRT would run."""
    if backend.standin is None:
        meta = ModelMetadata.find(row.model)
        layers = (meta.extra.get("layers") or {}) if meta else {}
        if not layers:
            raise ToolchainError(f"{row.model}: its sidecar has no layer report (extra.layers); rebuild the engine")
        row.layers = {"source": "engine", **layers}
        return
    report = check_qdq(row.onnx, allow_float=True)
    row.layers = {"source": "estimate from the ONNX's Q/DQ", "convs": report.convs,
                  "int8_convs": report.quantized_convs, "note": NO_ENGINE}  # fmt: skip


def extra_reformats(rows: list[EngineRow]) -> int | None:
    """Reformat layers of the QAT engine minus the PTQ engine's (None without both engines' reports)."""
    by = {r.name: r.layers for r in rows}
    qat, ptq = by.get("INT8 QAT", {}), by.get("INT8 PTQ", {})
    if "reformats" not in qat or "reformats" not in ptq:
        return None
    return int(qat["reformats"]) - int(ptq["reformats"])


def timed(label: str, fn, *args) -> None:
    """Run one measurement of one row, with a start and a timed finish line."""
    start = time.perf_counter()
    logger.info("%s ...", label)
    fn(*args)
    logger.info("%s: done (%.1f s)", label, time.perf_counter() - start)
