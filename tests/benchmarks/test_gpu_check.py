"""``make gpu-check`` on CPU: the skip line where TensorRT is missing, and the whole orchestration with ONNX
Runtime standing in for TensorRT (every step but the builder and the engine runner is the real one)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from base.errors import ToolchainError
from base.metadata import ModelMetadata
from benchmarks import gpu_check
from benchmarks.gpu_check import run_gpu_check
from benchmarks.gpu_config import Backends, GpuCheckConfig
from deploy.runtime.onnxruntime import OnnxRuntimeRunner

REPO = Path(__file__).resolve().parents[2]

def test_skip_line_without_tensorrt():
    assert importlib.util.find_spec("tensorrt") is None  # this machine: the skip path is the real one
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stdout.splitlines() == [done.stdout.strip()] and done.stdout.startswith(
        "gpu-check: skipped: TensorRT is not installed"
    )
    assert "make docker-gpu" in done.stdout and not done.stderr.strip()


def test_skip_line_without_a_cuda_library(monkeypatch, capsys):
    present = {"tensorrt"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name in present else None)
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("gpu-check: skipped: no CUDA library for Python: pip install pycuda") and out.count("\n") == 1


class FakeTensorRT:
    """ONNX Runtime in TensorRT's place: an "engine" is a copy of its ONNX with an engine-like sidecar."""

    def __init__(self, calibrators: bool, refuse: tuple[str, ...] = ()) -> None:
        self.calibrators, self.refuse, self.configs = calibrators, refuse, []

    def build(self, onnx: Path, cfg, out: Path) -> Path:
        self.configs.append(cfg)
        if cfg.precision in self.refuse:
            raise ToolchainError(f"{onnx}: refused {cfg.precision} (planted)")
        shutil.copyfile(onnx, out)
        meta = ModelMetadata.find(onnx)
        layers = {
            "layers": 3,
            "precisions": {cfg.precision.upper(): 3},
            "reformats": 0,
            "summary": f"3 {cfg.precision}",
        }
        replace(meta, precision=cfg.precision, extra={"layers": layers}).save(out)
        return out

    def backends(self) -> Backends:
        return Backends(build=self.build, open_engine=OnnxRuntimeRunner, open_onnx=OnnxRuntimeRunner,
                        calibrators=self.calibrators, engine_backend="onnxruntime", engine_suffix=".onnx")  # fmt: skip


@pytest.fixture(scope="module")
def tiny_check(tmp_path_factory, tiny_checkpoint, tiny_dataset):
    cfg = GpuCheckConfig(weights=str(tiny_checkpoint), data=str(tiny_dataset), out=str(tmp_path_factory.mktemp("gc")),
                         imgsz=64, ptq_images=8, calib_batches=2, compare_images=3, runs=5, frames=6, tests=False)  # fmt: skip
    fake = FakeTensorRT(calibrators=True)
    return cfg, fake, run_gpu_check(cfg, fake.backends())


def test_every_step_runs_on_the_stand_in(tiny_check):
    cfg, fake, report = tiny_check
    assert not report.failed, report.steps
    assert list(report.steps) == ["onnx", "engines", "outputs vs ONNX Runtime", "mAP", "latency", "memory", "layers",
                                  "deploy/infer.py video"]  # fmt: skip
    assert report.steps["deploy/infer.py video"].startswith("ok: 6 frames")
    assert [e.name for e in report.engines] == ["FP32", "FP16", "INT8 QDQ", "INT8 calibrated"]
    assert [e.sidecar_precision for e in report.engines] == ["fp32", "fp16", "int8", "int8"]
    sources = {e.name: Path(e.onnx).name for e in report.engines}
    assert sources == {"FP32": "baseline.onnx", "FP16": "baseline.fp16.onnx", "INT8 QDQ": "baseline.int8.onnx",
                       "INT8 calibrated": "baseline.onnx"}  # fmt: skip
    calibrated = next(c for c in fake.configs if c.calib_images)
    assert calibrated.precision == "int8" and Path(calibrated.calib_images).is_dir() and calibrated.calib_batches == 2


def test_measurements_are_recorded(tiny_check):
    cfg, _, report = tiny_check
    for e in report.engines:
        assert e.outputs["all"]["max_abs"] == 0 and e.outputs["images"] == 3  # the stand-in runs its own ONNX
        assert e.map["map50_95"] == e.map["onnx_map50_95"]
        assert e.latency_ms["runs"] == 5 and e.latency_ms["p99"] >= e.latency_ms["p50"] > 0
        assert e.memory["peak_rss_mib"] > 0 and e.memory["gpu_mib"] is None and e.memory["file_mib"] > 0
    folder = Path(cfg.out)
    for name in ("onnx/baseline.onnx", "onnx/baseline.fp16.onnx", "onnx/baseline.int8.onnx", "infer.mp4",
                 "infer.summary.json", "infer.log", "ptq.log"):  # fmt: skip
        assert (folder / name).is_file(), name


def test_report_files(tiny_check):
    cfg, _, report = tiny_check
    text = gpu_check.write_report(report, cfg, Path(cfg.out))
    saved = json.loads((Path(cfg.out) / "report.json").read_text())
    assert saved["steps"] == report.steps and [e["name"] for e in saved["engines"]][0] == "FP32"
    assert (Path(cfg.out) / "report.md").read_text() == text
    assert "| INT8 QDQ | built | int8 | 0 |" in text and "3 int8" in text


def test_a_failed_step_is_recorded_and_the_rest_runs(tiny_check, tmp_path, capsys):
    cfg, _, _ = tiny_check
    shutil.copytree(Path(cfg.out) / "onnx", tmp_path / "onnx")  # reused: no second PTQ
    fake = FakeTensorRT(calibrators=False, refuse=("fp16",))
    argv = ["--weights", cfg.weights, "--data", cfg.data, "--out", str(tmp_path), "--imgsz", "64", "--compare-images",
            "2", "--runs", "3", "--frames", "4", "--no-tests"]  # fmt: skip
    assert gpu_check.main(argv, fake.backends()) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["steps"]["engines"].startswith("failed: FP16: failed:") and "planted" in report["steps"]["engines"]
    status = {e["name"]: e["status"] for e in report["engines"]}
    assert status["INT8 calibrated"].startswith("not available: this TensorRT has no INT8 calibrators")
    assert status["INT8 QDQ"] == "built" and report["steps"]["mAP"] == "ok"  # the check went on
    assert report["steps"]["deploy/infer.py video"].startswith("ok: 4 frames")
    assert "FAILED: ['engines']" in capsys.readouterr().out


def test_tests_step_and_missing_inputs(tmp_path):
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 5, "no tests ran in 0.1s\n", "")

    fake = replace(FakeTensorRT(calibrators=True).backends(), run=run)
    cfg = GpuCheckConfig(weights=str(tmp_path / "none.pt"), out=str(tmp_path / "out"))
    report = run_gpu_check(cfg, fake)
    assert calls[0][-5:] == ["-m", "trt or gpu", "-q", "-p", "no:cacheprovider"]
    assert report.steps["tests"] == "failed: pytest exit 5: no tests ran in 0.1s (see pytest.log)"
    assert report.steps["onnx"].startswith(f"failed: {tmp_path / 'none.pt'}: the FP32 baseline not found")
    assert list(report.steps) == ["tests", "onnx"] and report.engines == []
