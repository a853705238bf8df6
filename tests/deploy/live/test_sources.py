from __future__ import annotations

import cv2
import numpy as np
import pytest

from base.errors import ToolchainError
from deploy.live.sources import ImageSource, VideoSource, open_source


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


def test_missing_camera_index_is_a_clear_error(capfd):
    with pytest.raises(ToolchainError, match="camera 9: (no /dev/video9|camera could not be opened)"):
        open_source("9")
    assert "WARN" not in capfd.readouterr().err  # none of OpenCV's own lines on top of ours


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


class FakeCapture:
    """A camera that delivers ``frames`` frames after each (re)open, then nothing (a dropout)."""

    opened: list = []

    def __init__(self, frames: int) -> None:
        self.frames = frames
        FakeCapture.opened.append(self)

    def isOpened(self) -> bool:  # noqa: N802  (OpenCV's name)
        return True

    def read(self):
        self.frames -= 1
        return (True, np.zeros((4, 4, 3), np.uint8)) if self.frames >= 0 else (False, None)

    def release(self) -> None:
        pass


class FakeClock:
    """Time that advances only when a frame is read (``per_frame`` seconds) or someone sleeps."""

    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _live_source(monkeypatch, frames_per_open: int, clock: FakeClock, **kwargs) -> VideoSource:
    FakeCapture.opened = []
    monkeypatch.setattr("deploy.live.sources.cv2.VideoCapture", lambda *a: FakeCapture(frames_per_open))
    return VideoSource(0, live=True, clock=clock, sleep=clock.sleep, **kwargs)


def test_live_source_reopens_with_bounded_backoff(monkeypatch):
    clock = FakeClock()
    source = _live_source(monkeypatch, 2, clock, reconnects=3, backoff=0.5, healthy_s=60.0)
    frames = []
    with pytest.raises(ToolchainError, match="camera 0: lost and not reopened after 3 attempts in a row"):
        for frame in source:
            frames.append(frame)
    assert len(frames) == 2 + 3 * 2  # each reopen delivers two frames, too short to count as healthy again
    assert len(FakeCapture.opened) == 4 and clock.sleeps == [0.5, 1.0, 2.0]  # exponential backoff


def test_reopen_budget_resets_after_a_healthy_period(monkeypatch):
    """A 24/7 camera survives more dropouts than ``reconnects`` when it runs well in between."""
    clock = FakeClock()
    source = _live_source(monkeypatch, 10, clock, reconnects=2, backoff=1.0, healthy_s=30.0)
    frames = 0
    for _ in source:
        frames += 1
        clock.now += 5.0  # 5 s a frame: ten frames are 50 s of healthy video after each reopen
        if frames == 60:
            break
    assert len(FakeCapture.opened) == 6  # five dropouts, each reopened: more than reconnects=2 over its life
    assert clock.sleeps == [1.0] * 5  # the budget was whole again each time: always the first backoff
    assert source.attempts == 0


def test_budget_does_not_reset_before_the_healthy_period(monkeypatch):
    clock = FakeClock()
    source = _live_source(monkeypatch, 10, clock, reconnects=2, backoff=1.0, healthy_s=30.0)
    with pytest.raises(ToolchainError, match="after 2 attempts in a row"):
        for _ in source:
            clock.now += 1.0  # 10 s of frames after each reopen: never healthy for 30 s
    assert clock.sleeps == [1.0, 2.0]


@pytest.mark.parametrize("name", ["clip!.avi", "a ! b.avi", "x;$(touch p).avi", "v'q\"uote.avi", "ünï code.avi"])
def test_file_names_with_shell_or_gstreamer_characters_open_as_files(tmp_path, make_video, name):
    video = make_video(tmp_path / name, frames=3)
    with open_source(video) as src:
        assert isinstance(src, VideoSource) and not src.live and src.api != cv2.CAP_GSTREAMER
        assert len(list(src)) == 3
    assert not (tmp_path / "p").exists()


def test_folder_with_a_bang_opens_its_images(tmp_path):
    folder = tmp_path / "run!1"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    with open_source(str(folder)) as src:
        assert isinstance(src, ImageSource) and [f.name for f in src] == ["a.jpg"]


def test_truncated_jpeg_is_skipped_with_its_name(tmp_path, caplog, capfd):
    ok, data = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    (tmp_path / "a_whole.jpg").write_bytes(data.tobytes())
    (tmp_path / "b_cut.jpg").write_bytes(data.tobytes()[: len(data) // 2])
    with open_source(str(tmp_path)) as src:
        assert [f.name for f in src] == ["a_whole.jpg"]
    assert "b_cut.jpg: truncated JPEG" in caplog.text
    assert "Premature end of JPEG" not in capfd.readouterr().err  # libjpeg's unnamed warning never fires


def test_a_folder_of_only_broken_images_is_an_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut")
    with pytest.raises(ToolchainError, match="none of its 1 image"):
        list(open_source(str(tmp_path)))


def _no_camera(index: int):
    raise ToolchainError(f"camera {index}: no /dev/video{index} on this machine")


def test_default_camera_tries_usb_then_csi_and_says_what_it_tried(monkeypatch):
    from deploy.live.sources import open_default_camera

    monkeypatch.setattr("deploy.live.sources.open_camera", _no_camera)
    with pytest.raises(ToolchainError) as info:
        open_default_camera(jetson=True)
    message = str(info.value)
    assert "camera 0" in message and "nvarguscamerasrc" in message and "pass --source" in message
    with pytest.raises(ToolchainError) as info:
        open_default_camera(jetson=False)
    assert "nvarguscamerasrc" not in str(info.value)


def test_default_camera_opens_the_csi_pipeline_on_a_jetson(monkeypatch):
    from deploy.live.sources import CSI_PIPELINE, open_default_camera

    opened = []
    monkeypatch.setattr("deploy.live.sources.open_camera", _no_camera)
    monkeypatch.setattr("deploy.live.sources.cv2.VideoCapture", lambda *a: opened.append(a) or FakeCapture(1))
    source = open_default_camera(jetson=True)
    assert source.live and opened == [(CSI_PIPELINE, cv2.CAP_GSTREAMER)]
