"""The five commands of the README, run as a new user would, in a fresh copy of the repository.

``make qat`` (which first makes the synthetic set and the FP32 baseline a fresh clone lacks), ``make
engine`` (one line where TensorRT is absent), the same build on a fake TensorRT 11.4 made from
NVIDIA's real API (``make fake-engine``), ``make bench``, and ``python deploy/infer.py --engine
model.int8.engine`` (no camera here: one line; on a video: the fake engine, and the ONNX on the CPU).
Everything is tiny (16 train / 8 val images at 64 px, one epoch each, a short benchmark) and runs in a
copy of the working tree, so the repository's own runs/ and data/ are never touched.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.slow  # about 2 minutes on 2 cores

REPO = Path(__file__).resolve().parents[1]
TINY = ["IMGSZ=64", "SYN_TRAIN=16", "SYN_VAL=8", "SYN_MIN=8", "SYN_MAX=32", "EPOCHS=1", "BATCH=8", "QAT_EPOCHS=1"]
QUICK_BENCH = ["BENCH_RUNS=5", "BENCH_FRAMES=8", "BENCH_RESAMPLES=20"]
RUN = Path("runs/qat/qat")
ENGINE_LINK = re.compile(r"model\.\w+\.engine(\.json)?")  # written by make engine in the repository root


def _make_variables() -> set[str]:
    """Every variable the Makefile reads, so that none leaks in from the environment of the test run."""
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*[?:]?=", text, re.M)) | set(re.findall(r"\$\(call flag,(\w+),", text))


def _environment() -> dict[str, str]:
    names = _make_variables()
    return {k: v for k, v in os.environ.items() if k not in names and not k.startswith(("MAKE", "MFLAGS"))}


def _fresh_clone(dest: Path) -> Path:
    """The files git lists (tracked and new, not ignored; not make engine's links), mtimes kept; .venv linked."""
    try:
        listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
                                capture_output=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout ({exc}): the chain test copies the files git lists")
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file() and not ENGINE_LINK.fullmatch(name):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    (dest / ".venv").symlink_to(REPO / ".venv")
    os.utime(dest / "pyproject.toml", (0, 0))  # older than .venv/.installed: make never reinstalls from the copy
    return dest


def _run(clone: Path, *command: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=clone, env=_environment(), capture_output=True, text=True, timeout=timeout)


def _make(clone: Path, target: str, *variables: str) -> subprocess.CompletedProcess:
    return _run(clone, "make", target, *variables)


def _ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (
        f"{result.args}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    return _fresh_clone(tmp_path_factory.mktemp("fresh") / "yolo-trt-qat")


@pytest.fixture(scope="module")
def qat(clone) -> tuple[Path, str, str]:
    """``make qat`` in the fresh clone; returns (clone, what a dry run planned before, and after)."""
    before = _ok(_run(clone, "make", "-n", "qat", *TINY)).stdout
    output = _ok(_make(clone, "qat", *TINY)).stdout
    after = _ok(_run(clone, "make", "-n", "qat", *TINY)).stdout
    assert "parity: OK" in output, output[-2000:]
    return clone, before, after


def test_make_qat_builds_data_baseline_and_the_qdq_onnx(qat):
    clone, before, after = qat
    assert "toolchain.cli data" in before and "toolchain.cli baseline" in before  # a fresh clone has neither
    assert "toolchain.cli data" not in after and "toolchain.cli baseline" not in after  # then both are reused
    assert (clone / "data/synthetic/data.yaml").is_file() and (clone / "runs/baseline/weights/best.pt").is_file()
    for name in ("fp32.onnx", "ptq.int8.onnx", "qat.int8.onnx", "qat.int8.onnx.json", "weights/best.pt", "report.md"):
        assert (clone / RUN / name).is_file(), name
    report = json.loads((clone / RUN / "report.json").read_text())
    assert list(report["results"]) == ["FP32", "PTQ INT8", "QAT INT8"] and report["check_qdq"].endswith(": OK")
    assert json.loads((clone / RUN / "qat.int8.onnx.json").read_text())["precision"] == "int8"


def test_make_engine_without_tensorrt_is_one_line(qat):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed: make engine builds for real here (make gpu-check checks it)")
    clone, _, _ = qat
    result = _make(clone, "engine")
    lines = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert lines[0].startswith("make engine: ") and "tensorrt" in lines[0], lines[0]
    assert "make bench" in lines[0] and "make fake-engine" in lines[0], lines[0]
    assert not (clone / "model.int8.engine").exists()


@pytest.fixture(scope="module")
def engine(qat) -> Path:
    """``make fake-engine TRT=11.4``: make engine's builder on TensorRT 11.4's real API; model.int8.engine."""
    clone, _, _ = qat
    result = _ok(_make(clone, "fake-engine", "TRT=11.4"))
    built = clone / RUN / "qat.int8.engine"
    assert result.stdout.splitlines()[-2:] == [
        str(RUN / "qat.int8.engine"),
        "model.int8.engine -> runs/qat/qat/qat.int8.engine",
    ]
    assert built.is_file() and (clone / "model.int8.engine").resolve() == built.resolve()
    return clone


def test_engine_sidecar_is_true_and_linked_at_the_root(engine):
    meta = json.loads((engine / "model.int8.engine.json").read_text())
    assert meta["precision"] == "int8" and meta["extra"]["tensorrt"].startswith("11.4")
    assert meta["extra"]["strongly_typed"] is True and meta["extra"]["int8_source"] == "qdq"
    assert meta["extra"]["layers"]["precisions"].get("INT8", 0) > 0, meta["extra"]["layers"]


def test_make_bench_after_qat(engine):
    _ok(_make(engine, "bench", *QUICK_BENCH))
    rows = json.loads((engine / "benchmarks/results/qat/report.json").read_text())["rows"]
    measured = {(r["variant"], r["backend"]) for r in rows if not r["skipped"]}
    assert {("FP32", "onnxruntime"), ("INT8 PTQ", "onnxruntime"), ("INT8 QAT", "onnxruntime")} <= measured
    for r in rows:
        if not r["skipped"]:
            assert r["latency_ms"]["runs"] == 5 and r["latency_ms"]["p50"] > 0, r
            assert 0 <= r["accuracy"]["map50_95"] <= 1 and r["accuracy"]["images"] == 8, r
    assert (engine / "benchmarks/results/qat/report.md").is_file()
    # the TensorRT rows: the engine benchmark (deploy.bench) of the same run, ONNX Runtime standing in without TensorRT
    engines = json.loads((engine / "benchmarks/results/qat/engines/report.json").read_text())
    assert [r["name"] for r in engines["rows"]] == ["FP32", "FP16", "INT8 PTQ", "INT8 QAT"], engines["rows"]
    assert all(r["status"] == "ok" for r in engines["rows"]), [(r["name"], r["status"]) for r in engines["rows"]]
    assert bool(engines["standin"]) == (importlib.util.find_spec("tensorrt") is None), engines["standin"]
    assert "engines/report.md" in (engine / "benchmarks/results/qat/report.md").read_text()


def test_infer_engine_without_a_camera_is_one_line(engine):
    if Path("/dev/video0").exists():
        pytest.skip("a camera is present: infer.py would open it")
    plain = _run(engine, sys.executable, "deploy/infer.py", "--engine", "model.int8.engine")
    if importlib.util.find_spec("tensorrt") is None:
        assert "TensorRT is not installed" in _one_error_line(plain)
    on_fake = _run(
        engine, sys.executable, "-m", "tests.fakes.run_engine", "11.4", "infer", "--engine", "model.int8.engine"
    )
    line = _one_error_line(on_fake)
    assert "no camera found (tried camera 0" in line and "pass --source" in line, line


def _video(path: Path, frames: int = 12) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for i in range(frames):
        writer.write(np.full((64, 96, 3), (20 * i) % 256, np.uint8))
    writer.release()
    return str(path)


def test_infer_on_a_video_with_the_fake_engine_and_the_onnx(engine, tmp_path):
    video = _video(tmp_path / "v.avi")
    fake = ["-m", "tests.fakes.run_engine", "11.4", "infer", "--engine", "model.int8.engine"]
    onnx = ["deploy/infer.py", "--model", str(RUN / "qat.int8.onnx")]
    for name, command in (("fake", fake), ("onnx", onnx)):
        summary, detections = tmp_path / f"{name}.json", tmp_path / f"{name}.jsonl"
        result = _ok(_run(engine, sys.executable, *command, "--source", video, "--summary", str(summary),
                          "--json", str(detections)))  # fmt: skip
        assert "12 frames in" in result.stdout, result.stdout
        assert json.loads(summary.read_text())["frames"] == 12
        assert len(detections.read_text().splitlines()) == 12
