"""A variant against its reference: identical outputs are exact, shifted boxes are not."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from base.dataset import ImageRecord, Split
from benchmarks.exactness import Reference
from deploy.runtime.base import Runner


class _Oracle(Runner):
    """Returns the head output that decodes to an image's labels, shifted by ``shift`` pixels; the image is
    recognised by its grey level, so the order of calls does not matter."""

    name = "oracle"

    def __init__(self, split: Split, shift: float = 0.0) -> None:
        self.split, self.shift = split, shift

    @property
    def input_shape(self):
        return (1, 3, 64, 64)

    def infer(self, batch):
        rec = self.split.images[int(round(batch[0, 0, 32, 32] * 255)) // 20 - 1]
        boxes = rec.boxes + self.shift
        xywh = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1)
        scores = np.eye(2, dtype=np.float32)[rec.classes] * 0.9
        return [np.concatenate([xywh.T, scores.T])[None]]

    def close(self):
        pass


def _split(folder: Path) -> Split:
    recs = []
    for i in range(8):
        path = folder / f"{i}.png"
        cv2.imwrite(str(path), np.full((64, 64, 3), 20 * (i + 1), np.uint8))
        boxes = np.array([[4 + i, 6, 30 + i, 28], [34, 30 + i, 60, 58]], np.float32)
        recs.append(ImageRecord(path, 64, 64, np.array([0, 1]), boxes))
    return Split("val", ["a", "b"], recs)


def test_identical_outputs_are_exact_and_shifted_boxes_are_not(tmp_path):
    split = _split(tmp_path)
    reference = Reference(_Oracle(split), split, diff_images=4, resamples=50)
    same = reference.check(_Oracle(split))
    assert same.exact and same.max_abs_box == 0 and same.max_abs_score == 0
    assert same.map50_95 == same.reference_map50_95 and same.difference["delta"] == 0 and same.diff_images == 4
    shifted = reference.check(_Oracle(split, shift=3.0))
    assert not shifted.exact and shifted.max_abs_box == 3.0 and shifted.difference["delta"] < -0.05
