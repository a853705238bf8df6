"""The benchmark suite: which rows exist on this machine, and the measurements of each.

Rows: FP32, FP32 in bf16 (CPUs that have it), INT8 PTQ, INT8 QAT and the peer INT8 (ultralytics'
own QAT, when its ONNX is given), on every backend available here (OpenVINO and ONNX Runtime on a
CPU; TensorRT where it and a GPU are present). A row that cannot run stays in the report with the
reason.
"""

from __future__ import annotations

import importlib.util
import logging
import platform
import tempfile
from pathlib import Path

import cv2
import numpy as np

from benchmarks.measure import Row, peak_memory, time_round_robin
from deploy.dataset import load_data_yaml, load_split
from deploy.evaluate import evaluate
from deploy.outputs import Outputs
from deploy.pipeline import PipelineConfig, run_pipeline
from deploy.sources import open_source

logger = logging.getLogger(__name__)


def cpu_has_bf16() -> bool:
    """Whether OpenVINO reports bf16 for this CPU."""
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
    if _available("tensorrt"):
        for variant, path in variants.items():
            precision = "fp16" if variant == "FP32" else "int8"
            rows.append(
                Row(variant if precision == "int8" else "FP16", "tensorrt", str(path) if path else "", precision)
            )
    else:
        rows.append(Row("FP32/FP16/INT8 engines", "tensorrt", ""))
    for row in rows:
        row.skipped = _why_not(row, peer)
    return rows


def _dynamic_batch(onnx_path: str) -> bool:
    import onnx

    dim = onnx.load(onnx_path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim[0]
    return not dim.HasField("dim_value")


def prepare_engines(rows: list[Row], folder: Path, max_batch: int = 8) -> None:
    """Build the TensorRT engine of each TensorRT row from its ONNX (FP16 from FP32, INT8 from Q/DQ)."""
    from deploy.engine.build import engine_from_onnx
    from deploy.engine.config import EngineConfig
    from deploy.errors import ToolchainError

    for r in rows:
        if r.backend != "tensorrt" or r.skipped or not r.model.endswith(".onnx"):
            continue
        target = folder / "engines" / f"{Path(r.model).stem}.{r.precision}.engine"
        batch = max_batch if _dynamic_batch(r.model) else 1
        cfg = EngineConfig(precision=r.precision, min_batch=1, opt_batch=batch, max_batch=batch)
        try:
            r.model = str(engine_from_onnx(r.model, cfg, target))
        except ToolchainError as exc:
            r.skipped = f"engine build failed: {exc}"


def _why_not(row: Row, peer: str | None) -> str | None:
    if row.backend == "tensorrt" and not _available("tensorrt"):
        return "TensorRT is not installed here (NVIDIA container or JetPack); no GPU rows"
    if row.backend == "tensorrt" and not _available("pycuda"):
        return "pycuda is not installed (pip install pycuda); TensorRT rows need it"
    if row.backend != "tensorrt" and not _available(row.backend):
        return f"{row.backend} is not installed"
    if row.precision == "bf16" and not cpu_has_bf16():
        return "this CPU has no bf16"
    if row.variant.startswith("INT8 peer") and not peer:
        return "no peer ONNX given: train it with 'yolo train ... quantize=8' (needs nvidia-modelopt) and pass --peer"
    if not Path(row.model).is_file():
        return f"{row.model} not found: run 'make qat' first"
    return None


def measure_latency(rows: list[Row], threads: int | None, runs: int, warmup: int, max_batch: int = 8) -> None:
    """Batch-1 latency of every row round-robin, then throughput at the largest batch each model takes."""
    runnable = [r for r in rows if not r.skipped]
    runners = {r.name: r.open(threads) for r in runnable}
    try:
        latency = time_round_robin(runners, runs, warmup, batch=1)
        for r in runnable:
            r.latency_ms = latency[r.name]
            batch = runners[r.name].max_batch or max_batch
            timed = (
                time_round_robin({r.name: runners[r.name]}, max(10, runs // 10), 2, batch)[r.name]
                if batch > 1
                else latency[r.name]
            )
            r.throughput = {"batch": batch, "images_per_s": 1000 * batch / timed["p50"]}
    finally:
        for runner in runners.values():
            runner.close()


def measure_accuracy(rows: list[Row], data: str, threads: int | None) -> None:
    split = load_split(load_data_yaml(data), "val")
    for r in [r for r in rows if not r.skipped]:
        logger.info("accuracy: %s", r.name)
        with r.open(threads) as runner:
            result = evaluate(runner, split)
        r.accuracy = {"map50_95": result.map50_95, "map50": result.map50, "ap_small": result.ap_small,
                      "per_class": result.per_class}  # fmt: skip


def make_video(data: str, path: Path, frames: int, size: int) -> Path:
    """An MJPG video of val images letterboxed to ``size`` x ``size`` (repeated up to ``frames``)."""
    from deploy.dataset import list_images
    from deploy.preprocess import letterbox

    images = list_images(load_data_yaml(data).splits["val"])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (size, size))
    for i in range(frames):
        writer.write(letterbox(cv2.imread(str(images[i % len(images)])), (size, size))[0])
    writer.release()
    return path


def measure_pipeline(rows: list[Row], data: str, threads: int | None, frames: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for r in [r for r in rows if not r.skipped]:
            with r.open(threads) as runner:
                size = runner.input_shape[2]
                video = Path(tmp) / f"v{size}.avi"
                if not video.exists():
                    make_video(data, video, frames, size)
                with open_source(str(video)) as source:
                    summary = run_pipeline(source, runner, Outputs([]), PipelineConfig((size, size)))
            r.pipeline = {"fps": summary.fps, "model_fps": summary.model_fps, "frames": summary.frames}


def measure_memory(rows: list[Row], threads: int | None) -> None:
    for r in [r for r in rows if not r.skipped]:
        r.memory = peak_memory(r, threads)


def _run(command: list[str]) -> str | None:
    import shutil
    import subprocess

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


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    """CPU, GPU and library versions of this machine."""
    env = {"python": platform.python_version(), "machine": platform.machine(), "opencv": cv2.__version__,
           "numpy": np.__version__, "cpu": cpu_name(), **gpu_environment()}  # fmt: skip
    for module in ("onnxruntime", "openvino", "tensorrt"):
        if _available(module):
            env[module] = __import__(module).__version__
    env["cpu_bf16"] = cpu_has_bf16()
    return env
