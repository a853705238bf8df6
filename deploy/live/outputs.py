"""Where detections go: boxes and labels drawn on the frame, a window, a video or image folder, JSON lines.

``Outputs`` sends each frame to every output asked for and finalises them all, also on Ctrl-C and
SIGTERM. The paths are checked before the run (``deploy.live.output_paths.check_outputs``) and
every write while writing; the video and JSON lines files are written by ``deploy.live.writers``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from base.errors import ToolchainError, interrupts_deferred
from base.fileio import atomic_path
from deploy.live.drawing import draw_detections
from deploy.live.output_paths import save_is_video
from deploy.live.sources import Frame
from deploy.live.writers import JsonLines, VideoRecording
from deploy.postprocess import Detections

logger = logging.getLogger(__name__)


class Outputs:
    """The outputs asked for on the command line; ``close()`` finalises them (also on ``with`` exit).

    Args:
        names: Class names for the labels.
        show: Open a window (needs a display).
        save: A video file (``.mp4``, ``.avi``, ``.mkv``, ``.mov``) or a folder for annotated images.
        json_path: JSON lines, one object per frame with its detections.
        fps: Frame rate written into a saved video.
    """

    def __init__(
        self, names: list[str], show: bool = False, save: str | None = None, json_path: str | None = None,
        fps: float = 30.0,
    ) -> None:  # fmt: skip
        self.names, self.show, self.fps = names, show, fps
        self.save = Path(save) if save else None
        self.video = VideoRecording(self.save, fps) if save and save_is_video(save) else None
        self.json = JsonLines(Path(json_path)) if json_path else None
        self.images_saved = 0
        self.stopped_by: int | None = None  # the signal (Ctrl-C, SIGTERM) that arrived during a write
        self.written = 0  # frames every output holds, counted where no stop can land between write and count

    @property
    def draws(self) -> bool:
        return self.show or self.save is not None

    def write(self, frame: Frame, dets: Detections, fps: float | None) -> bool:
        """Send one frame's detections to every output; returns False when the window asks to quit or
        a Ctrl-C or SIGTERM arrived while writing (``stopped_by`` says which).

        Raises:
            ToolchainError: A write failed (full disk, folder removed...); the message names the output.
        """
        with interrupts_deferred(deliver=False) as stops:  # a stop lands between frames: all outputs agree
            keep_going = self._write(frame, dets, fps)
            self.written += 1
        if stops:
            self.stopped_by = stops[0]
            return False
        return keep_going

    def _write(self, frame: Frame, dets: Detections, fps: float | None) -> bool:
        if self.json:
            rows = [{"box": [round(float(v), 1) for v in b], "score": round(float(s), 4), "class": int(c),
                     "name": self.names[c] if c < len(self.names) else str(c)}
                    for b, s, c in zip(dets.boxes, dets.scores, dets.classes)]  # fmt: skip
            self.json.write({"frame": frame.index, "source": frame.name, "detections": rows})
        if not self.draws:
            return True
        image = draw_detections(frame.image, dets, self.names, fps)
        if self.video is not None:
            self.video.write(image)
        elif self.save is not None:
            self._save_image(image, frame)
        if self.show:
            cv2.imshow("detections", image)
            return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)
        return True

    def _save_image(self, image: np.ndarray, frame: Frame) -> None:
        path = self.save / f"{Path(frame.name).stem}_{frame.index:06d}.jpg"
        ok, data = cv2.imencode(".jpg", image)
        if not ok:
            raise ToolchainError(f"--save {path}: OpenCV could not encode the frame as JPEG")
        try:
            self.save.mkdir(exist_ok=True)
            with atomic_path(path, flag="--save") as tmp:
                tmp.write_bytes(data.tobytes())
        except OSError as exc:
            raise ToolchainError(f"--save {path}: writing failed ({exc.strerror})") from exc
        self.images_saved += 1

    def close(self) -> None:
        """Finalise the video and JSON lines (renamed to their names) and close the window.

        Raises:
            ToolchainError: The video or JSON file could not be finished (the first such error).
        """
        outputs, self.video, self.json = [o for o in (self.video, self.json) if o is not None], None, None
        errors = []
        for output in outputs:
            try:
                output.finish()
            except ToolchainError as exc:
                errors.append(exc)
            finally:
                output.discard()  # removes the temporary file unless finish() renamed it
        if self.show:
            cv2.destroyAllWindows()
        if errors:
            raise errors[0]

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            self.close()
            return
        try:
            self.close()  # keep what was recorded before the failure
        except ToolchainError as close_error:
            logger.warning("%s", close_error)  # the failure in flight is the one to report
