"""Detections drawn on a frame: a box and a ``name score`` label per detection, and an FPS counter."""

from __future__ import annotations

import cv2
import numpy as np

from deploy.postprocess import Detections


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
