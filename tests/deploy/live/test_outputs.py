"""Outputs: a failed image or video write is an error naming the file, and leaves no partial file."""

from __future__ import annotations

import numpy as np
import pytest

from base.errors import ToolchainError
from deploy.live.outputs import Outputs
from deploy.live.sources import Frame
from deploy.postprocess import Detections


def test_a_failing_image_write_is_an_error_naming_the_file(tmp_path):
    outputs = Outputs([], save=str(tmp_path / "frames"))
    frame = Frame(0, np.zeros((8, 8, 3), np.uint8), "a.jpg", 0.0)
    outputs.write(frame, Detections.empty(), None)
    assert (tmp_path / "frames" / "a_000000.jpg").stat().st_size > 0
    (tmp_path / "frames" / "a_000001.jpg").mkdir()  # the next file's name is taken by a folder: the write fails
    with pytest.raises(ToolchainError, match=r"--save .*a_000001\.jpg: is a folder, not a regular file"):
        outputs.write(Frame(1, frame.image, "a.jpg", 0.0), Detections.empty(), None)


def test_a_failing_video_write_is_an_error(tmp_path, monkeypatch):
    class FullDiskWriter:
        def __init__(self, *args) -> None:
            pass

        def isOpened(self) -> bool:  # noqa: N802  (OpenCV's name)
            return True

        def write(self, image) -> bool:
            return False

        def release(self) -> None:
            pass

    monkeypatch.setattr("deploy.live.writers.cv2.VideoWriter", FullDiskWriter)
    outputs = Outputs([], save=str(tmp_path / "out.mp4"))
    with pytest.raises(ToolchainError, match=r"--save .*out\.mp4: writing frame 0 failed"):
        outputs.write(Frame(0, np.zeros((8, 8, 3), np.uint8), "v", 0.0), Detections.empty(), None)
    outputs.close()
    assert list(tmp_path.iterdir()) == []  # neither the video nor its temporary file
