"""deploy/infer.py end to end on a tiny exported model: every source kind, outputs, and bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from base.errors import ToolchainError
from deploy.live.app import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory, tiny_checkpoint) -> str:
    from toolchain.export.onnx import ExportConfig
    from toolchain.jobs.onnx_files import export_onnx
    from toolchain.models.yolo import load_model

    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return str(export_onnx(load_model(tiny_checkpoint), out, ExportConfig(imgsz=64)))


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
    capture = cv2.VideoCapture(str(tmp_path / "out.avi"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    capture.release()


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
        (["--source", "9"], "camera 9: no /dev/video9 on this machine"),
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


def _run_script(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "deploy" / "infer.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)  # fmt: skip


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error" in line.lower()]


def test_save_into_an_unwritable_folder_fails_before_any_work(tmp_path, tiny_onnx, make_video, capsys):
    """Before: exit 0 with nothing saved (cv2.imwrite's False was ignored)."""
    video = make_video(tmp_path / "v.avi", frames=3)
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file, so nothing can be created under it (even by root)")
    for save in (blocker / "frames", blocker / "out.mp4"):
        code = main(["--model", tiny_onnx, "--source", video, "--backend", "onnxruntime", "--save", str(save),
                     "--json", str(tmp_path / "d.jsonl")])  # fmt: skip
        captured = capsys.readouterr()
        assert code == 1 and "--save" in captured.err and str(blocker) in captured.err
        assert "Traceback" not in captured.err and "FPS" not in captured.out  # refused before the run
        assert not (tmp_path / "d.jsonl").exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--save", "missing/x.mp4", "folder missing does not exist"),
        ("--save", "x.xyz", "unknown extension '.xyz'"),
        ("--json", "missing/d.jsonl", "--json missing/d.jsonl: folder missing does not exist"),
        ("--summary", "missing/s.json", "--summary missing/s.json: folder missing does not exist"),
        ("--summary", ".", "is a folder"),
    ],
)
def test_output_paths_are_checked_before_the_run(tmp_path, tiny_onnx, make_video, capsys, monkeypatch, flag, value,
                                                 message):  # fmt: skip
    """Before: --summary into a missing folder was a traceback after the whole run; --save x.mov a folder."""
    monkeypatch.chdir(tmp_path)
    video = make_video(tmp_path / "v.avi", frames=3)
    code = main(["--model", tiny_onnx, "--source", video, "--backend", "onnxruntime", flag, value])
    captured = capsys.readouterr()
    assert code in (1, 2) and message in captured.err and "FPS" not in captured.out
    assert "try .avi" not in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.avi"]


def test_save_mov_writes_a_playable_video(tmp_path, tiny_onnx, make_video):
    video = make_video(tmp_path / "v.avi", frames=5)
    assert main(["--model", tiny_onnx, "--source", video, "--backend", "onnxruntime", "--save",
                 str(tmp_path / "out.mov")]) == 0  # fmt: skip
    capture = cv2.VideoCapture(str(tmp_path / "out.mov"))
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    capture.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mov", "v.avi"]  # no temporary file left


def test_an_output_that_would_overwrite_the_input_is_refused(tmp_path, tiny_onnx, make_video, capsys):
    video = make_video(tmp_path / "v.avi", frames=3)
    before = (tmp_path / "v.avi").read_bytes()
    assert main(["--model", tiny_onnx, "--source", video, "--backend", "onnxruntime", "--save", video]) == 2
    assert "the same file as the input" in capsys.readouterr().err
    assert (tmp_path / "v.avi").read_bytes() == before


def test_show_without_a_display_is_refused_up_front(tmp_path, tiny_onnx):
    """Before: Qt aborted the process (exit 134) at the first frame."""
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((40, 40, 3), np.uint8))
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = _run_script("--model", tiny_onnx, "--source", str(tmp_path / "a.jpg"), "--show", env=env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert _error_lines(done.stderr) == [done.stderr.strip().splitlines()[-1]]
    assert "--show" in done.stderr and "display" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_finalise_the_recording_and_print_the_summary(tmp_path, tiny_onnx, sig, code):
    """Before: SIGTERM (docker stop) killed the process: an unplayable .mp4 and no summary."""
    frames, video = 6000, str(tmp_path / "long.avi")  # long enough that a loaded CPU cannot finish it first
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 30, (96, 64))
    for i in range(frames):
        writer.write(np.full((64, 96, 3), i % 256, np.uint8))
    writer.release()
    saved, log = tmp_path / "out.mp4", tmp_path / "d.jsonl"
    proc = subprocess.Popen([sys.executable, str(REPO / "deploy" / "infer.py"), "--model", tiny_onnx, "--source", video,
                             "--backend", "onnxruntime", "--save", str(saved), "--json", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (log.is_file() and log.stat().st_size > 0) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "detection ended before it could be stopped: " + proc.communicate()[1][-2000:]
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err[-2000:]
    assert "(interrupted)" in out and "FPS end to end" in out and "Traceback" not in err
    written = len(log.read_text().splitlines())
    assert 0 < written < frames
    assert f"\n{written} frames in " in f"\n{out}"  # the summary counts what the outputs hold
    capture = cv2.VideoCapture(str(saved))
    assert capture.isOpened(), "the .mp4 was not finalised"
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == written
    capture.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl", "long.avi", "out.mp4"]


def _no_camera(index: int):
    raise ToolchainError(f"camera {index}: no /dev/video{index} on this machine")


def test_without_source_the_default_camera_is_tried_and_named(tmp_path, tiny_onnx, capsys, monkeypatch):
    """Before: 'the following arguments are required: --source'."""
    from deploy.live.sources import Frame, FrameSource

    monkeypatch.setattr("deploy.live.sources.is_jetson", lambda: False)
    monkeypatch.setattr("deploy.live.sources.open_camera", _no_camera)
    assert main(["--model", tiny_onnx, "--backend", "onnxruntime"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "error: no camera found (tried camera 0: no /dev/video0 on this machine); pass --source with "
        "a camera index, an image, a folder, a video file, an rtsp:// URL or a GStreamer pipeline"
    )

    class OneFrameCamera(FrameSource):
        live, name = True, "camera 0"

        def __iter__(self):
            yield Frame(0, np.zeros((32, 32, 3), np.uint8), "camera 0", 0.0)

    monkeypatch.setattr("deploy.live.sources.open_camera", lambda i: OneFrameCamera())
    assert main(["--model", tiny_onnx, "--backend", "onnxruntime"]) == 0
    assert "camera 0 via onnxruntime" in capsys.readouterr().out


def test_engine_without_camera_is_one_line_and_exit_1(tmp_path):
    """The promised command, on a machine with no camera (and here no TensorRT): one line, exit 1."""
    missing = _run_script("--engine", str(tmp_path / "model.int8.engine"))
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [missing.stderr.strip()]
    assert "model.int8.engine: engine not found; build it with 'make engine'" in missing.stderr
    (tmp_path / "model.int8.engine").write_bytes(b"not really an engine")
    present = _run_script("--engine", str(tmp_path / "model.int8.engine"))
    assert present.returncode == 1 and "Traceback" not in present.stderr
    assert present.stderr.strip().splitlines() == _error_lines(present.stderr), present.stderr  # that line only


def test_the_script_and_the_module_run_the_same_command_line():
    """``python deploy/infer.py`` (a script: it makes the repository importable) and ``python -m deploy.infer``."""
    script = _run_script("--help")
    module = subprocess.run([sys.executable, "-m", "deploy.infer", "--help"], capture_output=True, text=True,
                            timeout=120, cwd=REPO)  # fmt: skip
    for done in (script, module):
        assert done.returncode == 0 and done.stdout.startswith("usage: infer ") and "143 SIGTERM" in done.stdout
    assert script.stdout == module.stdout
    assert _run_script().returncode == 2  # --model is required: a usage error


def test_help_tells_every_backend_and_default():
    from deploy.live.flags import build_parser
    from deploy.runtime import BACKEND_HELP, BACKENDS

    text = build_parser().format_help()
    assert set(BACKEND_HELP) == set(BACKENDS)
    for backend in BACKENDS:
        assert f"  {backend} " in text
    assert "default: camera 0" in text and "CSI camera" in text and "onnxruntime-cuda where ONNX Runtime" in text
    assert "130 Ctrl-C, 143 SIGTERM" in text


@pytest.mark.parametrize(
    "args",
    [["--backend", "tensorflow"], ["--conf", "2"], ["--iou", "nan"], ["--queue", "0"], ["--threads", "-1"],
     ["--max-det", "0"], ["--classes", "-1"], ["--imgsz", "0"], ["--precision", "int4"], ["--cuda", "opencl"]],
)  # fmt: skip
def test_bad_flags_are_usage_errors(tiny_onnx, capsys, args):
    with pytest.raises(SystemExit) as info:
        main(["--model", tiny_onnx, "--source", "x.jpg", *args])
    assert info.value.code == 2
    assert args[0] in capsys.readouterr().err
