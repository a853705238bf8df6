"""The steps of ``make gpu-check`` (see benchmarks/gpu_check.py): each takes the engines and the config,
records what it measured on the engines, and returns a one-line result or raises."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from base.dataset import load_data_yaml, load_split
from base.errors import ToolchainError
from base.metadata import ModelMetadata
from benchmarks.gpu_config import ROOT, Backends, GpuCheckConfig
from benchmarks.gpu_measure import output_errors, parse_trtexec
from deploy.bench.measure import engine_latency
from deploy.bench.memory import peak_memory
from deploy.bench.pipeline import make_video
from deploy.engine.config import EngineConfig
from deploy.evaluate import evaluate
from deploy.preprocess import preprocess
from toolchain.jobs.fp16_onnx import fp16_onnx_from_onnx

MAP_TOLERANCE = {"FP32": 0.01, "FP16": 0.01, "INT8 QDQ": 0.01, "INT8 peer": 0.01, "INT8 calibrated": 0.03}


@dataclass
class Engine:
    """One engine of the check and what was measured on it."""

    name: str
    onnx: str  # what it is built from, and compared with on ONNX Runtime
    precision: str
    path: str = ""
    status: str = "pending"  # built, failed: ..., not available: ...
    sidecar_precision: str = ""
    build_s: float = 0.0
    outputs: dict = field(default_factory=dict)
    map: dict = field(default_factory=dict)
    latency_ms: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)


def run_tests(backends: Backends, folder: Path) -> str:
    """``pytest -m "trt or gpu"``: exit 5 (nothing collected) is a failure too, since this machine has TensorRT."""
    done = backends.run([sys.executable, "-m", "pytest", "-m", "trt or gpu", "-q", "-p", "no:cacheprovider"],
                        cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    (folder / "pytest.log").write_text(done.stdout + done.stderr)
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    if done.returncode != 0:
        raise RuntimeError(f"pytest exit {done.returncode}: {last} (see pytest.log)")
    return f"ok: {last}"


def prepare_onnx(cfg: GpuCheckConfig, backends: Backends, folder: Path) -> dict[str, Path]:
    """FP32, FP16 and PTQ QDQ INT8 ONNX of the baseline (reused when present), and the peer's."""
    for path, what in ((cfg.weights, "the FP32 baseline"), (cfg.data, "the dataset")):
        if not Path(path).is_file():
            raise ToolchainError(
                f"{path}: {what} not found; pass --weights/--data (make gpu-check WEIGHTS=... DATA=...)"
            )
    onnx = folder / "onnx"
    int8, fp32 = onnx / "baseline.int8.onnx", onnx / "baseline.onnx"
    if not (int8.is_file() and fp32.is_file()):
        command = [
            sys.executable,
            "-m",
            "toolchain.cli",
            "ptq",
            "--weights",
            cfg.weights,
            "--data",
            cfg.data,
            "--imgsz",
            str(cfg.imgsz),
            "--num-images",
            str(cfg.ptq_images),
            "--out",
            str(int8),
            "--fp32",
        ]
        done = backends.run(command, cwd=ROOT, capture_output=True, text=True)  # fmt: skip
        (folder / "ptq.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0 or not (int8.is_file() and fp32.is_file()):
            raise ToolchainError(f"PTQ export failed (exit {done.returncode}); see {folder / 'ptq.log'}")
    fp16 = onnx / "baseline.fp16.onnx"
    if not fp16.is_file():
        fp16_onnx_from_onnx(fp32, fp16)
    files = {"fp32": fp32, "fp16": fp16, "int8": int8}
    if cfg.peer:
        if not Path(cfg.peer).is_file():
            raise ToolchainError(f"{cfg.peer}: peer ONNX not found (--peer)")
        files["peer"] = Path(cfg.peer)
    return files


def plan_engines(onnx: dict[str, Path]) -> list[Engine]:
    """The engines to build: (name, source ONNX, precision)."""
    engines = [
        Engine("FP32", str(onnx["fp32"]), "fp32"),
        Engine("FP16", str(onnx["fp16"]), "fp16"),
        Engine("INT8 QDQ", str(onnx["int8"]), "int8"),
        Engine("INT8 calibrated", str(onnx["fp32"]), "int8"),
    ]
    if "peer" in onnx:
        engines.append(Engine("INT8 peer", str(onnx["peer"]), "int8"))
    return engines  # fmt: skip


def build_engines(engines: list[Engine], cfg: GpuCheckConfig, backends: Backends, folder: Path) -> str:
    train = load_data_yaml(cfg.data).splits["train"][0]
    for e in engines:
        calibrated = e.name == "INT8 calibrated"
        if calibrated and not backends.calibrators:
            e.status = (
                "not available: this TensorRT has no INT8 calibrators (strongly typed only); INT8 comes from Q/DQ"
            )
            continue
        options = {"calib_images": str(train), "calib_batches": cfg.calib_batches,
                   "calib_cache": str(folder / "engines" / "calibration.cache")} if calibrated else {}  # fmt: skip
        target = folder / "engines" / (e.name.lower().replace(" ", "-") + backends.engine_suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        try:
            e.path = str(backends.build(Path(e.onnx), EngineConfig(precision=e.precision, cuda=cfg.cuda, **options),
                                        target))  # fmt: skip
        except ToolchainError as exc:
            e.status = f"failed: {exc}"
            continue
        e.build_s, e.status = time.perf_counter() - start, "built"
        meta = ModelMetadata.find(e.path)
        e.sidecar_precision = meta.precision if meta else "?"
        e.layers = (meta.extra.get("layers") or {}) if meta else {}
    failed = [f"{e.name}: {e.status}" for e in engines if e.status.startswith("failed")]
    if failed:
        raise RuntimeError("; ".join(failed))
    return f"ok: {sum(e.status == 'built' for e in engines)} engines"


def compare_images(cfg: GpuCheckConfig, shape: tuple) -> np.ndarray:
    """The first ``compare_images`` val images, preprocessed to ``shape`` (N ignored): ``[K, 3, H, W]``."""
    records = load_split(load_data_yaml(cfg.data), "val").images[: cfg.compare_images]
    batches = [preprocess([cv2.imread(str(r.path))], tuple(shape[2:]))[0] for r in records]
    return np.concatenate(batches)


def compare_outputs(engines: list[Engine], cfg: GpuCheckConfig, backends: Backends) -> str:
    """Each engine against ONNX Runtime running the ONNX it was built from, image by image."""
    for e in [e for e in engines if e.status == "built"]:
        with backends.open_engine(Path(e.path)) as engine, backends.open_onnx(Path(e.onnx)) as reference:
            images = compare_images(cfg, reference.input_shape)
            got = np.concatenate([engine.infer(images[i : i + 1])[0] for i in range(len(images))])
            want = np.concatenate([reference.infer(images[i : i + 1])[0] for i in range(len(images))])
        e.outputs = {"all": output_errors(got, want), "scores": output_errors(got[:, 4:], want[:, 4:]),
                     "boxes_px": output_errors(got[:, :4], want[:, :4]), "images": len(images)}  # fmt: skip
    return "ok"


def score(engines: list[Engine], cfg: GpuCheckConfig, backends: Backends) -> str:
    """mAP of each engine and of its ONNX on ONNX Runtime; an engine further from its ONNX than the tolerance fails."""
    split, onnx_maps, off = load_split(load_data_yaml(cfg.data), "val"), {}, []
    for e in [e for e in engines if e.status == "built"]:
        if e.onnx not in onnx_maps:
            with backends.open_onnx(Path(e.onnx)) as runner:
                onnx_maps[e.onnx] = evaluate(runner, split).map50_95
        with backends.open_engine(Path(e.path)) as runner:
            result = evaluate(runner, split)
        e.map = {"map50_95": result.map50_95, "map50": result.map50, "onnx_map50_95": onnx_maps[e.onnx]}
        if abs(result.map50_95 - onnx_maps[e.onnx]) > MAP_TOLERANCE[e.name]:
            off.append(f"{e.name} {result.map50_95:.4f} vs its ONNX {onnx_maps[e.onnx]:.4f}")
    if off:
        raise RuntimeError("mAP further from the ONNX than the tolerance: " + "; ".join(off))
    return "ok"


def time_engines(engines: list[Engine], cfg: GpuCheckConfig, backends: Backends) -> str:
    """Batch-1 latency of our runner (host to host), and trtexec's GPU compute time where trtexec is here."""
    for e in [e for e in engines if e.status == "built"]:
        with backends.open_engine(Path(e.path)) as runner:
            stats = engine_latency(runner, cfg.runs, max(1, cfg.runs // 10))  # deploy.bench's measurement
        e.latency_ms = {k: stats[k] for k in ("p50", "p99", "runs")}
        if backends.trtexec:
            e.latency_ms["trtexec_gpu_compute"] = trtexec_gpu_compute(backends, e.path)
    return "ok" if backends.trtexec else "ok (trtexec not on PATH: our runner's latency only)"


def trtexec_gpu_compute(backends: Backends, engine: str) -> dict:
    done = backends.run([backends.trtexec, f"--loadEngine={engine}", "--warmUp=500", "--duration=3"],
                        capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"trtexec --loadEngine={engine} exit {done.returncode}: {done.stdout[-300:]}")
    return parse_trtexec(done.stdout)


def measure_memory(engines: list[Engine], cfg: GpuCheckConfig, backends: Backends) -> str:
    """GPU and host memory of each engine, loaded and run in a fresh process (``deploy.bench.memory``)."""
    for e in [e for e in engines if e.status == "built"]:
        e.memory = peak_memory(e.path, backends.engine_backend, e.name, cfg.cuda, run=backends.run)
    return "ok"


def layer_reports(engines: list[Engine]) -> str:
    """The inspector's layer report of our QDQ engine and of the peer's, from their sidecars."""
    shown = {e.name: e.layers for e in engines if e.name in ("INT8 QDQ", "INT8 peer") and e.status == "built"}
    missing = [name for name, layers in shown.items() if not layers]
    if missing:
        raise RuntimeError(f"no layer report in the sidecar of {missing}")
    return "ok: " + "; ".join(f"{n}: {layers.get('summary', layers)}" for n, layers in shown.items())


def video_through_infer(engines: list[Engine], cfg: GpuCheckConfig, backends: Backends, folder: Path) -> str:
    """``deploy/infer.py`` on a video of val images with the INT8 engine: the pipeline's worker thread infers."""
    engine = next((e for e in engines if e.name == "INT8 QDQ" and e.status == "built"), None)
    if engine is None:
        raise RuntimeError("no INT8 QDQ engine was built")
    video = make_video(cfg.data, folder / "val.avi", cfg.frames, cfg.imgsz)
    summary = folder / "infer.summary.json"
    command = [sys.executable, "deploy/infer.py", "--model", engine.path, "--source", str(video), "--backend",
               backends.engine_backend, "--cuda", cfg.cuda, "--save", str(folder / "infer.mp4"), "--summary",
               str(summary)]  # fmt: skip
    done = backends.run(command, cwd=ROOT, capture_output=True, text=True)
    (folder / "infer.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"deploy/infer.py exit {done.returncode}: {done.stderr.strip()[-300:]}")
    result = json.loads(summary.read_text())
    if result["frames"] != cfg.frames:
        raise RuntimeError(f"deploy/infer.py ran {result['frames']} of {cfg.frames} frames")
    return f"ok: {result['frames']} frames, {result['fps']:.1f} FPS end to end, {result['model_fps']:.1f} model only"
