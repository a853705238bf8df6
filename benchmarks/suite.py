"""The benchmark suite: which rows exist on this machine, and the measurements of each.

Rows: FP32, FP32 in bf16 (CPUs that have it), INT8 PTQ, INT8 QAT and the peer INT8 (ultralytics'
own QAT, when its ONNX is given), on OpenVINO and ONNX Runtime. A row that cannot run stays in the report
with the reason. The TensorRT rows are the engine benchmark's (``deploy.bench``, a step of ``make bench``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

from base.dataset import load_data_yaml, load_split
from benchmarks.layers import layer_profile
from benchmarks.measure import Row, RowProcess, Schedule, other_load, peak_memory, time_rotated
from deploy.bench.pipeline import make_video, pipeline_summary
from deploy.bench.timing import summarize
from deploy.bootstrap import Resamples
from deploy.cpu import describe as cpu_describe
from deploy.cpu import effective_isa, isa_flags_line, native_precisions
from deploy.evaluate import evaluate

logger = logging.getLogger(__name__)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively under the oneDNN cap, and OpenVINO reports it."""
    if "bf16" not in native_precisions():
        return False
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # no OpenVINO, or a build without the property
        return False


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def plan_rows(run_dir: Path, peer: str | None) -> list[Row]:
    """Every (variant, backend) row, with ``skipped`` set where it cannot run here."""
    variants = {
        "FP32": run_dir / "fp32.onnx", "INT8 PTQ": run_dir / "ptq.int8.onnx", "INT8 QAT": run_dir / "qat.int8.onnx",
        "INT8 peer (ultralytics QAT)": Path(peer) if peer else None,
    }  # fmt: skip
    rows: list[Row] = []
    for backend in ("openvino", "onnxruntime"):
        for variant, path in variants.items():
            rows.append(Row(variant, backend, str(path) if path else ""))
        if backend == "openvino":
            rows.append(Row("FP32", backend, str(variants["FP32"]), precision="bf16"))
    for row in rows:
        row.skipped = _why_not(row, peer)
    return rows


def _why_not(row: Row, peer: str | None) -> str | None:
    if not _available(row.backend):
        return f"{row.backend} is not installed"
    if row.precision == "bf16" and not cpu_has_bf16():
        return "this CPU has no bf16"
    if row.variant.startswith("INT8 peer") and not peer:
        return "no peer ONNX given: train it with 'yolo train ... quantize=8' (needs nvidia-modelopt) and pass --peer"
    if not Path(row.model).is_file():
        return f"{row.model} not found: run 'make qat' first"
    return None


def measure_latency(rows: list[Row], threads: int | None, runs: int, warmup: int, max_batch: int = 8) -> dict:
    """Batch-1 latency of every row, each in its own process, in rotated blocks; then throughput: at the
    largest batch each model takes, and for OpenVINO rows with the THROUGHPUT hint (streams and
    requests in flight) at batch 1 and that batch. Returns ``other_cpu_share`` of the batch-1 timing."""
    runnable = [r for r in rows if not r.skipped]
    schedule = Schedule.for_runs(runs, warmup)
    with other_load() as load, contextlib.ExitStack() as stack:
        procs = {r.name: stack.enter_context(RowProcess(r.probe(threads), r.name)) for r in runnable}
        latency = time_rotated(procs, schedule)
        batches = {r.name: procs[r.name].info["input_shape"][0] or max_batch for r in runnable}
        batch_ms = _time_by_batch(procs, batches, Schedule(rounds=3, runs=max(5, runs // 10), warmup=2))
    for r in runnable:
        r.latency_ms = summarize(latency[r.name])
        ms = batch_ms.get(r.name, r.latency_ms["p50"])
        r.throughput = {"batch": batches[r.name], "images_per_s": 1000 * batches[r.name] / ms}
    openvino = [r for r in runnable if r.backend == "openvino"]
    if openvino:
        measure_throughput_hint(openvino, threads, max_batch)
    return load


def _time_by_batch(procs: dict[str, RowProcess], batches: dict[str, int], schedule: Schedule) -> dict[str, float]:
    """Median milliseconds per batch of each row whose batch is over 1, rows of one batch size together."""
    out = {}
    for batch in sorted({b for b in batches.values() if b > 1}):
        group = {n: p for n, p in procs.items() if batches[n] == batch}
        timed = time_rotated(group, schedule, batch, desc=f"batch {batch}")
        out.update({n: float(np.median(t)) for n, t in timed.items()})
    return out


def measure_throughput_hint(rows: list[Row], threads: int | None, max_batch: int, batches_per_block: int = 16) -> None:
    """Images/s of OpenVINO rows compiled with the THROUGHPUT hint, every request in flight, at batch 1
    and at ``max_batch`` (dynamic-batch models), each row in its own process, rotated blocks."""
    schedule = Schedule(rounds=3, runs=batches_per_block, warmup=2)
    with contextlib.ExitStack() as stack:
        procs = {r.name: stack.enter_context(RowProcess(r.probe(threads, "THROUGHPUT"), r.name)) for r in rows}
        hint = {r.name: {"streams": procs[r.name].info.get("streams"), "requests": procs[r.name].info.get("requests")}
                for r in rows}  # fmt: skip
        for batch in (1, max_batch):
            group = {n: p for n, p in procs.items() if batch == 1 or p.info["input_shape"][0] is None}
            timed = time_rotated(group, schedule, batch, "throughput", f"THROUGHPUT hint, batch {batch}")
            for name, t in timed.items():
                hint[name][f"batch{batch}_images_per_s"] = 1000 * batch / float(np.median(t))
    for r in rows:
        r.throughput["throughput_hint"] = hint[r.name]


def measure_layers(rows: list[Row], threads: int | None) -> None:
    """OpenVINO's per-layer counters of every OpenVINO row (``benchmarks/layers.py``)."""
    for r in [r for r in rows if not r.skipped and r.backend == "openvino"]:
        r.layers = layer_profile(r.model, r.precision, threads)
        if r.layers.get("int8_note"):
            logger.info("%s: %s", r.name, r.layers["int8_note"])


def measure_accuracy(rows: list[Row], data: str, threads: int | None, resamples: int = 1000) -> None:
    """mAP of every row on the val split, and paired bootstrap intervals of the differences that the
    report shows: each row against FP32 on its backend, INT8 QAT against INT8 PTQ, and each row on
    OpenVINO or TensorRT against the same model on ONNX Runtime."""
    split = load_split(load_data_yaml(data), "val")
    boot = Resamples(len(split.images), resamples=resamples)
    for r in [r for r in rows if not r.skipped]:
        logger.info("accuracy: %s", r.name)
        with r.open(threads) as runner:
            result = evaluate(runner, split)
        boot.add(r.name, result.matches)
        r.accuracy = {"map50_95": result.map50_95, "map50": result.map50, "ap_small": result.ap_small,
                      "per_class": result.per_class, "images": result.images,
                      "interval": list(boot.interval(r.name))}  # fmt: skip
    for r, other in comparisons(rows):
        r.accuracy.setdefault("differences", {})[other.name] = boot.difference(r.name, other.name).to_dict()


def comparisons(rows: list[Row]) -> list[tuple[Row, Row]]:
    """The (row, reference) pairs whose mAP difference the report gives."""
    done = [r for r in rows if not r.skipped]
    source = lambda r: "FP32" if r.variant == "FP16" else r.variant  # noqa: E731  (an FP16 engine is built from FP32)
    pairs = []
    for r in done:
        same = [o for o in done if o.backend == r.backend and o is not r]
        refs = [o for o in same if o.variant in ("FP32", "FP16") and o.precision in ("f32", "fp16")]
        if r.variant == "INT8 QAT":
            refs += [o for o in same if o.variant == "INT8 PTQ" and o.precision == r.precision]
        if r.backend != "onnxruntime":
            refs += [o for o in done if o.backend == "onnxruntime" and o.variant == source(r)]
        pairs += [(r, o) for o in refs]
    return pairs


def measure_pipeline(rows: list[Row], data: str, threads: int | None, frames: int) -> None:
    """Pipeline FPS of every row on a video of ``frames`` val images at its input size."""
    with tempfile.TemporaryDirectory() as tmp:
        for r in [r for r in rows if not r.skipped]:
            with r.open(threads) as runner:
                size = runner.input_shape[2]
                video = Path(tmp) / f"v{size}.avi"
                if not video.exists():
                    make_video(data, video, frames, size)
                summary = pipeline_summary(runner, video)
            r.pipeline = {"fps": summary.fps, "model_fps": summary.model_fps, "frames": summary.frames}


def measure_memory(rows: list[Row], threads: int | None) -> None:
    """Peak memory of every row, each in a fresh probe process."""
    for r in [r for r in rows if not r.skipped]:
        r.memory = peak_memory(r.probe(threads), r.name)


def _run(command: list[str]) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def gpu_environment() -> dict:
    """GPU name and driver (nvidia-smi), and on a Jetson the power mode and whether clocks are locked."""
    env = {"gpu": _run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])}
    mode = _run(["nvpmodel", "-q"])
    if mode:
        env["jetson_power_mode"] = " ".join(mode.split())
        clocks = _run(["jetson_clocks", "--show"]) or ""
        env["jetson_clocks_locked"] = "MinFreq=MaxFreq" in clocks.replace(" ", "") if clocks else None
    return env


def environment() -> dict:
    """CPU, GPU and library versions of this machine."""
    env = {"python": platform.python_version(), "machine": platform.machine(), "opencv": cv2.__version__,
           "numpy": np.__version__, "cpu": cpu_describe(), "cpu_isa": effective_isa(),
           "cpu_flags": isa_flags_line(), **gpu_environment()}  # fmt: skip
    for module in ("onnxruntime", "openvino", "tensorrt"):
        if _available(module):
            env[module] = __import__(module).__version__
    env["cpu_bf16"] = cpu_has_bf16()
    return env
