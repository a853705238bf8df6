"""Frame sources for live detection: an image, a folder, a video file, a camera index, an RTSP/HTTP
URL or a GStreamer pipeline (a Jetson CSI camera through nvarguscamerasrc).

Example:
    >>> with open_source("0") as source:          # USB camera 0
    ...     for frame in source:
    ...         ...
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deploy.dataset import IMAGE_SUFFIXES
from deploy.errors import ToolchainError

logger = logging.getLogger(__name__)


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
    """One image, or every image in a folder (sorted); an image that does not decode is skipped with a warning."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self.paths = (
            sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else [path]
        )
        if not self.paths:
            raise ToolchainError(f"{path}: no images in this folder; expected {sorted(IMAGE_SUFFIXES)} files")

    def __iter__(self) -> Iterator[Frame]:
        for i, path in enumerate(self.paths):
            image = cv2.imread(str(path))
            if image is None:
                logger.warning("%s: image does not decode; skipped", path)
                continue
            yield Frame(i, image, path.name, time.perf_counter())


class VideoSource(FrameSource):
    """A video file, a camera index, a URL or a GStreamer pipeline through ``cv2.VideoCapture``.

    A live source that stops delivering frames is reopened with exponential backoff, at most
    ``reconnects`` times; a file ends cleanly at its last frame.
    """

    def __init__(self, spec: str | int, live: bool, reconnects: int = 5, backoff: float = 0.5) -> None:
        self.spec, self.live, self.reconnects, self.backoff = spec, live, reconnects, backoff
        self.attempts = 0  # reopen attempts over the source's life: bounded, even if each one works
        self.name = f"camera {spec}" if isinstance(spec, int) else str(spec)
        self.capture = self._open()

    def _open(self) -> cv2.VideoCapture:
        gstreamer = isinstance(self.spec, str) and "!" in self.spec
        capture = cv2.VideoCapture(self.spec, cv2.CAP_GSTREAMER) if gstreamer else cv2.VideoCapture(self.spec)
        if not capture.isOpened():
            capture.release()
            what = "camera" if isinstance(self.spec, int) else "video source"
            raise ToolchainError(f"{self.name}: {what} could not be opened; check that it exists and is readable")
        return capture

    def _reopen(self) -> None:
        """Reopen after a lost frame, waiting ``backoff * 2**k`` before the k-th attempt.

        Raises:
            ToolchainError: The ``reconnects`` attempts of this source's life are used up.
        """
        while self.attempts < self.reconnects:
            delay = self.backoff * 2**self.attempts
            self.attempts += 1
            logger.warning(
                "%s: no frame; reopening in %.1f s (attempt %d/%d)", self.name, delay, self.attempts, self.reconnects
            )
            time.sleep(delay)
            self.capture.release()
            try:
                self.capture = self._open()
                return
            except ToolchainError:
                continue
        raise ToolchainError(f"{self.name}: lost and not reopened after {self.reconnects} attempts; check the camera")

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
            yield Frame(index, image, self.name, time.perf_counter())
            index += 1

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


def open_source(spec: str) -> FrameSource:
    """A source from the ``--source`` string: a digit is a camera, ``rtsp://``/``http://`` a stream,
    a string with ``!`` a GStreamer pipeline, a folder its images, a file an image or a video.

    Raises:
        ToolchainError: The file or folder does not exist, or the camera or stream cannot be opened.
    """
    if spec.isdigit():
        return VideoSource(int(spec), live=True)
    if spec.startswith(("rtsp://", "rtmp://", "http://", "https://")) or "!" in spec:
        return VideoSource(spec, live=True)
    path = Path(spec)
    if not path.exists():
        raise ToolchainError(f"{path}: source not found; expected an image, a folder, a video, a camera index or a URL")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path)
    return VideoSource(str(path), live=False)
