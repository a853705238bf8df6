"""deploy/infer.py end to end on a tiny exported model: every source kind, outputs, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from deploy.infer import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory, tiny_checkpoint) -> str:
    from toolchain.export.onnx import ExportConfig, onnx_from_model
    from toolchain.models.yolo import load_model

    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return str(onnx_from_model(load_model(tiny_checkpoint), out, ExportConfig(imgsz=64)))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_video_with_every_output(tmp_path, tiny_onnx, make_video, backend, capsys):
    video = make_video(tmp_path / "v.avi", frames=8)
    code = main(["--model", tiny_onnx, "--source", video, "--backend", backend, "--conf", "0.0001",
                 "--save", str(tmp_path / "out.avi"), "--json", str(tmp_path / "d.jsonl"),
                 "--summary", str(tmp_path / "s.json")])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "FPS end to end" in out and "inference" in out and "p99" in out
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 8
    assert json.loads((tmp_path / "s.json").read_text())["frames"] == 8
    assert (tmp_path / "out.avi").stat().st_size > 0


def test_image_and_folder_sources(tmp_path, tiny_onnx):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), np.full((50, 80, 3), 40 * i, np.uint8))
    assert main(["--model", tiny_onnx, "--source", str(tmp_path / "0.jpg"), "--backend", "onnxruntime"]) == 0
    assert main(["--model", tiny_onnx, "--source", str(tmp_path), "--save", str(tmp_path / "annotated"),
                 "--backend", "onnxruntime"]) == 0  # fmt: skip
    assert len(list((tmp_path / "annotated").glob("*.jpg"))) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "9"], "camera 9: camera could not be opened"),
        (["--source", "nowhere.mp4"], "source not found"),
        (["--model", "missing.onnx", "--source", "x.jpg"], "missing.onnx: model not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(tiny_onnx, capsys, args, message):
    argv = (["--model", tiny_onnx] if "--model" not in args else []) + args
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_runs_as_a_script(tmp_path, tiny_onnx):
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((40, 40, 3), np.uint8))
    done = subprocess.run([sys.executable, str(REPO / "deploy" / "infer.py"), "--model", tiny_onnx,
                           "--source", str(tmp_path / "a.jpg"), "--backend", "onnxruntime"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "1 frames" in done.stdout
