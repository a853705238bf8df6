"""The live pipeline's FPS on a video of val images: the one pipeline measurement, here and in ``make bench``."""

from __future__ import annotations

import numpy as np

from benchmarks import infer_video
from deploy.bench.pipeline import make_video, pipeline_summary
from deploy.runtime.base import Runner


class _Head(Runner):
    """A runner whose head outputs hold no box: the pipeline runs, decodes nothing, and counts every frame."""

    name = "stand-in"
    input_shape = (1, 3, 32, 32)  # the pipeline reads the rest of the Runner interface (end_to_end, image_size)

    def __init__(self) -> None:
        self.calls = 0

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        self.calls += 1
        assert batch.shape == (1, 3, 32, 32)
        return [np.zeros((1, 6, 21), np.float32)]

    def close(self) -> None:
        pass


def test_every_frame_of_the_video_goes_through_the_pipeline(tiny_dataset, tmp_path):
    video = make_video(str(tiny_dataset), tmp_path / "v.avi", frames=5, size=32)
    runner = _Head()
    summary = pipeline_summary(runner, video)
    assert summary.frames == runner.calls == 5 and summary.fps > 0 and summary.model_fps > 0


def test_a_missing_model_is_one_error_line(tmp_path, capsys):
    assert infer_video.main(["--model", str(tmp_path / "none.onnx"), "--data", str(tmp_path / "d.yaml")]) == 1
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'none.onnx'}: model not found"
