"""The files live detection writes as it goes: a video under a temporary name, renamed once it plays
back (its path holds a complete recording or nothing), and JSON lines flushed a frame at a time.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import cv2
import numpy as np

from base.errors import ToolchainError
from base.fileio import commit_temp, is_stdout, output_target, temp_path_beside
from deploy.live.output_paths import VIDEO_SUFFIXES

logger = logging.getLogger(__name__)


class VideoRecording:
    """A video written to a temporary file beside its final name, renamed once checked playable."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps, self.frames = output_target(path, "--save"), fps, 0  # a link: its target is replaced
        self.tmp: Path | None = None
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None

    def _open(self, image: np.ndarray) -> None:
        self.size = (image.shape[1], image.shape[0])
        self.tmp = temp_path_beside(self.path, keep_suffix=True)
        fourcc = VIDEO_SUFFIXES[self.path.suffix.lower()]
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*fourcc), self.fps, self.size)
        if not self.writer.isOpened():
            self.discard()
            raise ToolchainError(
                f"--save {self.path}: OpenCV cannot write {fourcc} video into a {self.path.suffix} file here; "
                "try .avi (MJPG) or an image folder"
            )

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            self._open(image)
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size)  # a frame of another size would be dropped without a word
        if self.writer.write(image) is False:  # OpenCV 5 reports a failed write; 4 returns None
            raise ToolchainError(f"--save {self.path}: writing frame {self.frames} failed; is the disk full?")
        self.frames += 1

    def finish(self) -> None:
        """Close the writer and move the video to its name, after checking that it plays."""
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        if not self.frames:
            self.discard()
            return
        check = cv2.VideoCapture(str(self.tmp), cv2.CAP_ANY)
        readable = check.isOpened() and check.read()[0]
        check.release()
        if not readable:
            self.discard()
            raise ToolchainError(
                f"--save {self.path}: the recording of {self.frames} frames does not play back; is the disk full?"
            )
        commit_temp(self.tmp, self.path)
        logger.info("Saved %d frames to %s", self.frames, self.path)

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)


class JsonLines:
    """JSON lines written to ``path`` as they come (``tail -f`` follows a live run), one flushed line
    per frame; the file is created with the first line, so a run that fails before it leaves none."""

    def __init__(self, path: Path) -> None:
        self.path, self.lines = path, 0
        self.file = None

    def write(self, row: dict) -> None:
        try:
            if self.file is None:
                self.file = sys.stdout if is_stdout(self.path) else open(output_target(self.path, "--json"), "w",  # noqa: SIM115
                                                                          encoding="utf-8")  # closed in finish/discard
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()
        except OSError as exc:
            raise ToolchainError(f"--json {self.path}: writing failed ({exc.strerror})") from exc
        self.lines += 1

    def finish(self) -> None:
        if self.file is None or self.file is sys.stdout:
            return
        try:
            self.file.close()
        except OSError as exc:
            raise ToolchainError(f"--json {self.path}: writing failed ({exc.strerror})") from exc

    def discard(self) -> None:
        """Close the file (whatever was written and flushed stays: each line is a whole frame)."""
        if self.file is not None and self.file is not sys.stdout and not self.file.closed:
            try:
                self.file.close()
            except OSError:
                pass  # finish() reported it
