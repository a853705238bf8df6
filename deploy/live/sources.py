"""Frame sources for live detection: an image, a folder, a video file, a camera index, an RTSP/HTTP
URL or a GStreamer pipeline (a Jetson CSI camera through nvarguscamerasrc), and the default camera.

Example:
    >>> with open_source("0") as source:          # USB camera 0
    ...     for frame in source:
    ...         ...
"""

from __future__ import annotations

import abc
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from base.dataset import IMAGE_SUFFIXES, read_image
from base.errors import ToolchainError

logger = logging.getLogger(__name__)
STREAM_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://")
CSI_PIPELINE = (
    "nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM), width=1280, height=720, framerate=30/1 ! "
    "nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1"
)
SOURCE_KINDS = "a camera index, an image, a folder, a video file, an rtsp:// URL or a GStreamer pipeline"


@dataclass
class Frame:
    """One captured frame."""

    index: int
    image: np.ndarray
    name: str
    timestamp: float


class FrameSource(abc.ABC):
    """Iterable of frames that owns its device or file; ``live`` sources drop late frames."""

    live: bool = False
    name: str = "source"

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None:  # noqa: B027  (sources without a device have nothing to release)
        """Release the camera or file. Safe to call twice."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ImageSource(FrameSource):
    """One image, or every image in a folder (sorted); an image that does not decode, or a truncated
    JPEG, is skipped with a warning that names it."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self.paths = (
            sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else [path]
        )
        if not self.paths:
            raise ToolchainError(f"{path}: no images in this folder; expected {sorted(IMAGE_SUFFIXES)} files")

    def __iter__(self) -> Iterator[Frame]:
        delivered, first_problem = 0, ""
        for i, path in enumerate(self.paths):
            image, problem = read_image(path)
            if image is None:
                logger.warning("%s; skipped", problem)
                first_problem = first_problem or problem
                continue
            delivered += 1
            yield Frame(i, image, path.name, time.perf_counter())
        if not delivered:
            count = len(self.paths)
            raise ToolchainError(f"{self.name}: none of its {count} image(s) is usable; first: {first_problem}")


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV logs several lines of its own when a capture fails to open; our one line says it better."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def file_api() -> int:
    """The capture backend for a video file: FFmpeg where OpenCV has it, so that a name with ``!``
    is never parsed as a GStreamer pipeline."""
    from cv2 import videoio_registry

    return cv2.CAP_FFMPEG if videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY


class VideoSource(FrameSource):
    """A video file, a camera index, a URL or a GStreamer pipeline through ``cv2.VideoCapture``.

    A live source that stops delivering frames is reopened with exponential backoff, at most
    ``reconnects`` times in a row; after ``healthy_s`` seconds of frames since the last reopen the
    budget is whole again, so a camera running for months survives more than ``reconnects``
    dropouts. A file ends cleanly at its last frame.

    Args:
        spec: Camera index, file path, URL or GStreamer pipeline.
        live: Reopen on a lost frame (cameras, streams) instead of ending (files).
        reconnects: Reopen attempts before giving up.
        backoff: Wait before the first reopen attempt; doubled for each next one.
        api: OpenCV capture backend (``cv2.CAP_*``).
        healthy_s: Seconds of frames after which the reopen budget resets.
        clock, sleep: Time functions (tests pass fakes).
    """

    def __init__(
        self, spec: str | int, live: bool, reconnects: int = 5, backoff: float = 0.5, api: int = cv2.CAP_ANY,
        healthy_s: float = 60.0, clock: Callable[[], float] | None = None, sleep: Callable[[float], None] | None = None,
    ) -> None:  # fmt: skip
        self.spec, self.live, self.reconnects, self.backoff, self.api = spec, live, reconnects, backoff, api
        self.healthy_s = healthy_s
        self._clock, self._sleep = clock or time.monotonic, sleep or time.sleep
        self.attempts = 0  # reopen attempts since the source was last healthy for healthy_s
        self._reopened_at: float | None = None
        self.name = f"camera {spec}" if isinstance(spec, int) else str(spec)
        self.capture = self._open()

    def _open(self) -> cv2.VideoCapture:
        with _quiet_opencv():
            capture = cv2.VideoCapture(self.spec, self.api)
        if not capture.isOpened():
            capture.release()
            what = "camera" if isinstance(self.spec, int) else "video source"
            raise ToolchainError(f"{self.name}: {what} could not be opened; check that it exists and is readable")
        return capture

    def _reopen(self) -> None:
        """Reopen after a lost frame, waiting ``backoff * 2**k`` before the k-th attempt.

        Raises:
            ToolchainError: ``reconnects`` attempts in a row did not bring the source back.
        """
        while self.attempts < self.reconnects:
            delay = self.backoff * 2**self.attempts
            self.attempts += 1
            logger.warning(
                "%s: no frame; reopening in %.1f s (attempt %d/%d)", self.name, delay, self.attempts, self.reconnects
            )
            self._sleep(delay)
            self.capture.release()
            try:
                self.capture = self._open()
            except ToolchainError:
                continue
            self._reopened_at = self._clock()
            return
        raise ToolchainError(
            f"{self.name}: lost and not reopened after {self.reconnects} attempts in a row; check the camera"
        )

    def _note_healthy(self) -> None:
        if self.attempts and self._reopened_at is not None and self._clock() - self._reopened_at >= self.healthy_s:
            logger.info("%s: delivering frames again for %.0f s; reopen budget reset", self.name, self.healthy_s)
            self.attempts = 0

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while self.capture is not None:
            ok, image = self.capture.read()
            if not ok:
                if self.live:
                    self._reopen()
                    continue
                if index == 0:
                    raise ToolchainError(f"{self.name}: no frame could be read; the file is unreadable or empty")
                return
            self._note_healthy()
            yield Frame(index, image, self.name, time.perf_counter())
            index += 1

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


def open_camera(index: int) -> VideoSource:
    """Camera ``index`` (``/dev/video<index>`` on Linux, checked first: OpenCV's own failure is noisy).

    Raises:
        ToolchainError: The camera is absent or cannot be opened.
    """
    device = Path(f"/dev/video{index}")
    if sys.platform.startswith("linux") and not device.exists():
        raise ToolchainError(f"camera {index}: no {device} on this machine; connect a camera or pass another --source")
    return VideoSource(index, live=True)


def is_jetson() -> bool:
    """Whether this is an NVIDIA Jetson (L4T), which has CSI cameras behind nvarguscamerasrc."""
    model = Path("/proc/device-tree/model")
    return Path("/etc/nv_tegra_release").exists() or (model.is_file() and b"Jetson" in model.read_bytes())


def open_default_camera(jetson: bool | None = None) -> VideoSource:
    """The camera used without ``--source``: USB camera 0, else (on a Jetson) the CSI camera.

    Raises:
        ToolchainError: Neither opens; names what was tried and how to pass a source.
    """
    tried = []
    try:
        return open_camera(0)
    except ToolchainError as exc:
        tried.append(str(exc).split(";")[0])
    if is_jetson() if jetson is None else jetson:
        try:
            return VideoSource(CSI_PIPELINE, live=True, api=cv2.CAP_GSTREAMER)
        except ToolchainError:
            tried.append("the CSI camera (nvarguscamerasrc sensor-id=0): could not be opened")
    raise ToolchainError(f"no camera found (tried {'; '.join(tried)}); pass --source with {SOURCE_KINDS}")


def open_source(spec: str) -> FrameSource:
    """A source from the ``--source`` string.

    A digit string is a camera; an existing file or folder is opened as such (even when its name
    has ``!`` or other characters GStreamer or a shell would read); then ``rtsp://``/``http://``
    is a stream and a string with ``!`` a GStreamer pipeline.

    Raises:
        ToolchainError: The file or folder does not exist, or the camera or stream cannot be opened.
    """
    if spec.isdigit():
        return open_camera(int(spec))
    path = Path(spec)
    if path.exists():
        if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageSource(path)
        return VideoSource(str(path), live=False, api=file_api())
    if spec.startswith(STREAM_PREFIXES):
        return VideoSource(spec, live=True)
    if "!" in spec:
        return VideoSource(spec, live=True, api=cv2.CAP_GSTREAMER)
    raise ToolchainError(f"{path}: source not found; expected {SOURCE_KINDS}")
