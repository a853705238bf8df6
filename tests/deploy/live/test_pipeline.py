from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from deploy.live.outputs import Outputs
from deploy.live.pipeline import PipelineConfig, run_pipeline
from deploy.live.sources import Frame, FrameSource, open_source
from deploy.runtime.base import Runner


class FakeRunner(Runner):
    """One box of class 1 at the image centre; optionally slow, optionally failing."""

    name = "fake"

    def __init__(self, delay: float = 0.0, fail_at: int | None = None) -> None:
        self.delay, self.fail_at, self.calls, self.closed = delay, fail_at, 0, False

    @property
    def input_shape(self):
        return (1, 3, 64, 64)

    def infer(self, batch):
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("device lost")
        time.sleep(self.delay)
        out = np.zeros((1, 6, 4), np.float32)
        out[0, :4, 0] = [32, 32, 16, 16]
        out[0, 5, 0] = 0.9
        return [out]

    def close(self):
        self.closed = True


class FastLiveSource(FrameSource):
    live = True
    name = "live"

    def __init__(self, frames: int) -> None:
        self.frames = frames

    def __iter__(self):
        for i in range(self.frames):
            yield Frame(i, np.zeros((64, 64, 3), np.uint8), "live", time.perf_counter())


def test_video_to_json_and_saved_video(tmp_path, make_video):
    cfg = PipelineConfig(imgsz=(64, 64))
    outputs = Outputs(["a", "b"], save=str(tmp_path / "out.avi"), json_path=str(tmp_path / "d.jsonl"))
    with open_source(make_video(tmp_path / "v.avi", frames=10)) as src, FakeRunner() as runner:
        summary = run_pipeline(src, runner, outputs, cfg)
    outputs.close()
    assert summary.frames == 10 and summary.dropped == 0 and not summary.interrupted
    rows = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in rows] == list(range(10))
    box = rows[0]["detections"][0]
    assert box["name"] == "b" and box["score"] == pytest.approx(0.9)
    # 96x64 frame in 64x64: scale 2/3, 10 px of padding on top; net box (24, 24, 40, 40) maps back to:
    assert box["box"] == pytest.approx([36.0, 21.0, 60.0, 45.0], abs=0.6)
    capture = cv2.VideoCapture(str(tmp_path / "out.avi"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 10  # every frame reached the video
    capture.release()
    assert set(summary.to_dict()["stages"]) == {"capture", "preprocess", "inference", "postprocess", "output"}


def test_live_source_drops_late_frames_instead_of_queueing(tmp_path):
    cfg = PipelineConfig(imgsz=(64, 64), queue_size=2)
    with FakeRunner(delay=0.01) as runner:
        summary = run_pipeline(FastLiveSource(200), runner, Outputs(["a", "b"]), cfg)
    assert summary.dropped > 0 and summary.frames + summary.dropped == 200
    assert summary.frames == runner.calls


def test_a_failing_runner_stops_every_stage_and_raises(tmp_path):
    import threading

    before = set(threading.enumerate())
    runner = FakeRunner(fail_at=3)
    with pytest.raises(RuntimeError, match="device lost"):
        run_pipeline(FastLiveSource(50), runner, Outputs(["a"]), PipelineConfig(imgsz=(64, 64)))
    left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not left  # the capture and inference threads were joined


class _InterruptingOutputs(Outputs):
    """Raises KeyboardInterrupt (as Ctrl-C does) on the third frame written."""

    written = 0

    def write(self, frame, dets, fps):
        if self.written == 2:
            raise KeyboardInterrupt
        self.written += 1
        return super().write(frame, dets, fps)


def test_ctrl_c_stops_cleanly_with_a_summary():
    import threading

    before = set(threading.enumerate())
    runner = FakeRunner(delay=0.005)
    summary = run_pipeline(FastLiveSource(1000), runner, _InterruptingOutputs(["a"]), PipelineConfig(imgsz=(64, 64)))
    assert summary.interrupted and summary.frames == 2 and 2 <= runner.calls < 1000  # stopped, not run to the end
    assert not runner.closed  # the caller owns the runner: the pipeline does not close it
    assert not [t for t in set(threading.enumerate()) - before if t.is_alive()]


def test_summary_puts_host_ms_per_frame_beside_inference(tmp_path, make_video):
    with open_source(make_video(tmp_path / "v.avi", frames=6)) as src, FakeRunner(delay=0.002) as runner:
        summary = run_pipeline(src, runner, Outputs(["a", "b"]), PipelineConfig(imgsz=(64, 64)))
    host = summary.to_dict()["host_ms_per_frame"]
    assert host["host"] == pytest.approx(host["preprocess"] + host["postprocess"])
    assert host["inference"] >= 2.0 and host["preprocess"] > 0 and host["postprocess"] > 0
    line = summary.table().splitlines()[-1]
    assert line.startswith("  host per frame: preprocess") and f"against inference {host['inference']:.2f} ms" in line


class _CheckingRunner(FakeRunner):
    """Fails if its input batch changes while it runs (a frame letterboxed into a buffer still in use)."""

    def infer(self, batch):
        before = batch.copy()
        out = super().infer(batch)
        if not np.array_equal(before, batch):
            raise AssertionError("the input batch was overwritten during inference")
        return out


class _CountingLiveSource(FastLiveSource):
    def __iter__(self):
        for i in range(self.frames):
            yield Frame(i, np.full((48, 64, 3), i % 256, np.uint8), "live", time.perf_counter())


def test_a_frame_in_inference_keeps_its_buffer_while_newer_ones_are_dropped():
    with _CheckingRunner(delay=0.02) as runner:
        summary = run_pipeline(_CountingLiveSource(150), runner, Outputs(["a", "b"]),
                               PipelineConfig(imgsz=(64, 64), queue_size=2))  # fmt: skip
    assert summary.dropped > 10 and summary.frames == runner.calls


class _EndToEndRunner(FakeRunner):
    """An end-to-end model: uint8 NHWC in, one detection of class 1 at the centre out."""

    output_names = ["det_boxes", "det_scores", "det_classes", "num_dets"]
    seen: list = []

    def infer(self, batch):
        self.seen.append((batch.dtype, batch.shape))
        boxes = np.array([[[24, 24, 40, 40], [0, 0, 0, 0]]], np.float32)
        return [boxes, np.array([[0.9, 0.0]], np.float32), np.array([[1, -1]], np.int32), np.array([1], np.int32)]


def test_an_end_to_end_model_gets_uint8_frames_and_its_detections_mapped_back(tmp_path, make_video):
    outputs = Outputs(["a", "b"], json_path=str(tmp_path / "d.jsonl"))
    with open_source(make_video(tmp_path / "v.avi", frames=3)) as src, _EndToEndRunner() as runner:
        summary = run_pipeline(src, runner, outputs, PipelineConfig(imgsz=(64, 64)))
    outputs.close()
    assert summary.end_to_end and "end-to-end graph" in summary.table()
    assert set(runner.seen) == {(np.dtype(np.uint8), (1, 64, 64, 3))}
    box = json.loads((tmp_path / "d.jsonl").read_text().splitlines()[0])["detections"][0]
    assert box["name"] == "b" and box["box"] == pytest.approx([36.0, 21.0, 60.0, 45.0], abs=0.6)
