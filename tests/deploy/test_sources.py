from __future__ import annotations

import cv2
import numpy as np
import pytest

from deploy.errors import ToolchainError
from deploy.sources import ImageSource, VideoSource, open_source


def test_image_and_folder(tmp_path):
    for name in ("a.jpg", "b.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((20, 30, 3), np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    (tmp_path / "notes.txt").write_text("x")
    with open_source(str(tmp_path)) as src:
        assert isinstance(src, ImageSource) and not src.live
        assert [f.name for f in src] == ["a.jpg", "b.png"]  # the broken one is skipped
    with open_source(str(tmp_path / "a.jpg")) as src:
        (frame,) = list(src)
        assert frame.image.shape == (20, 30, 3)


def test_generated_video_file_ends_cleanly(tmp_path, make_video):
    with open_source(make_video(tmp_path / "v.avi")) as src:
        assert isinstance(src, VideoSource) and not src.live
        frames = list(src)
    assert len(frames) == 12 and frames[-1].index == 11 and frames[0].image.shape == (64, 96, 3)
    assert src.capture is None  # released on exit


def test_missing_camera_index_is_a_clear_error():
    with pytest.raises(ToolchainError, match="camera 9: camera could not be opened"):
        open_source("9")


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ToolchainError, match="source not found"):
        open_source(str(tmp_path / "nothing.mp4"))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(ToolchainError, match="bad.mp4"):
        list(open_source(str(bad)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ToolchainError, match="no images"):
        open_source(str(tmp_path / "empty"))


def test_live_source_reopens_with_bounded_backoff(monkeypatch):
    import numpy as np

    from deploy.sources import VideoSource

    class FlakyCapture:
        """Two frames, then nothing: a camera that disconnected."""

        def __init__(self, *args) -> None:
            self.frames = 2

        def isOpened(self) -> bool:  # noqa: N802  (OpenCV's name)
            return True

        def read(self):
            self.frames -= 1
            return (True, np.zeros((4, 4, 3), np.uint8)) if self.frames >= 0 else (False, None)

        def release(self) -> None:
            pass

    opened = []
    monkeypatch.setattr("deploy.sources.cv2.VideoCapture", lambda *a: opened.append(a) or FlakyCapture())
    sleeps = []
    monkeypatch.setattr("deploy.sources.time.sleep", sleeps.append)
    source = VideoSource(0, live=True, reconnects=3, backoff=0.5)
    frames = []
    with pytest.raises(ToolchainError, match="camera 0: lost and not reopened after 3 attempts"):
        for frame in source:
            frames.append(frame)
    assert len(frames) == 2 + 3 * 2  # each reopen delivers two more frames; the attempts are bounded in total
    assert len(opened) == 4 and sleeps == [0.5, 1.0, 2.0]  # exponential backoff
