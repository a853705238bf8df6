"""Where detections go: boxes and labels drawn on the frame, a window, a video or image folder, JSON lines."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np

from deploy.errors import ToolchainError
from deploy.postprocess import Detections
from deploy.sources import Frame

logger = logging.getLogger(__name__)
VIDEO_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


def _colour(cls: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(cls + 7)
    return tuple(int(c) for c in rng.integers(64, 256, 3))


def draw_detections(image: np.ndarray, dets: Detections, names: list[str], fps: float | None = None) -> np.ndarray:
    """Boxes, ``name score`` labels and an FPS counter drawn on a copy of ``image``."""
    out = image.copy()
    for (x0, y0, x1, y1), score, cls in zip(dets.boxes.astype(int), dets.scores, dets.classes):
        colour = _colour(int(cls))
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, 2)
        label = f"{names[cls] if cls < len(names) else cls} {score:.2f}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        cv2.rectangle(out, (x0, max(0, y0 - th - 4)), (x0 + tw + 2, y0), colour, -1)
        cv2.putText(out, label, (x0 + 1, max(th, y0 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    if fps is not None:
        cv2.putText(out, f"{fps:.1f} FPS", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 255, 0), 2, cv2.LINE_AA)
    return out


class Outputs:
    """The outputs asked for on the command line; ``close()`` releases the writer and window.

    Args:
        names: Class names for the labels.
        show: Open a window (needs a display).
        save: A video file (``.mp4``, ``.avi``, ``.mkv``) or a folder for annotated images.
        json_path: JSON lines, one object per frame with its detections.
        fps: Frame rate written into a saved video.
    """

    def __init__(
        self, names: list[str], show: bool = False, save: str | None = None, json_path: str | None = None,
        fps: float = 30.0,
    ) -> None:  # fmt: skip
        self.names, self.show, self.fps = names, show, fps
        self.save = Path(save) if save else None
        self.writer: cv2.VideoWriter | None = None
        self.json = open(json_path, "w") if json_path else None  # noqa: SIM115  (closed in close())
        if self.save and self.save.suffix.lower() not in VIDEO_SUFFIXES:
            self.save.mkdir(parents=True, exist_ok=True)

    @property
    def draws(self) -> bool:
        return self.show or self.save is not None

    def write(self, frame: Frame, dets: Detections, fps: float | None) -> bool:
        """Send one frame's detections to every output; returns False when the window asks to quit."""
        if self.json:
            rows = [{"box": [round(float(v), 1) for v in b], "score": round(float(s), 4), "class": int(c),
                     "name": self.names[c] if c < len(self.names) else str(c)}
                    for b, s, c in zip(dets.boxes, dets.scores, dets.classes)]  # fmt: skip
            self.json.write(json.dumps({"frame": frame.index, "source": frame.name, "detections": rows}) + "\n")
        if not self.draws:
            return True
        image = draw_detections(frame.image, dets, self.names, fps)
        if self.save is not None:
            self._save(image, frame)
        if self.show:
            cv2.imshow("detections", image)
            return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)
        return True

    def _save(self, image: np.ndarray, frame: Frame) -> None:
        suffix = self.save.suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            cv2.imwrite(str(self.save / f"{Path(frame.name).stem}_{frame.index:06d}.jpg"), image)
            return
        if self.writer is None:
            h, w = image.shape[:2]
            self.writer = cv2.VideoWriter(
                str(self.save), cv2.VideoWriter_fourcc(*VIDEO_SUFFIXES[suffix]), self.fps, (w, h)
            )
            if not self.writer.isOpened():
                raise ToolchainError(f"{self.save}: cannot open a video writer for it; try .avi or an image folder")
        self.writer.write(image)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.json:
            self.json.close()
            self.json = None
        if self.show:
            cv2.destroyAllWindows()
