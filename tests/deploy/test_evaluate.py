from __future__ import annotations

import numpy as np
import pytest

from base.dataset import ImageRecord, Split
from deploy.evaluate import coco_map, evaluate
from deploy.postprocess import Detections
from deploy.runtime.base import Runner


def _split() -> Split:
    recs = [
        ImageRecord(
            __import__("pathlib").Path(f"{i}.jpg"),
            100,
            200,
            np.array([0, 1]),
            np.array([[10, 10, 50, 40], [100, 20, 190, 90]], np.float32),
        )
        for i in range(3)
    ]
    return Split("val", ["a", "b"], recs)


def _dets(split: Split, shift: float = 0.0, score: float = 0.9) -> list[Detections]:
    return [Detections(r.boxes + shift, np.full(len(r.boxes), score, np.float32), r.classes) for r in split.images]


def test_perfect_detections_score_one():
    split = _split()
    result = coco_map(split, _dets(split))
    assert result.map50_95 == pytest.approx(1.0) and result.map50 == pytest.approx(1.0)
    assert result.per_class == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}
    assert result.ap_small is None  # no GT box under 32x32 px
    assert result.ap_medium == pytest.approx(1.0)


def test_shifted_boxes_lose_high_iou_ap_only():
    split = _split()
    result = coco_map(split, _dets(split, shift=4.0))
    assert result.map50 == pytest.approx(1.0)
    assert 0.2 < result.map50_95 < 0.95


def test_no_detections_score_zero():
    split = _split()
    empty = [Detections.empty() for _ in split.images]
    result = coco_map(split, empty)
    assert result.map50_95 == 0.0 and result.map50 == 0.0


def test_wrong_class_scores_zero_for_that_class():
    split = _split()
    dets = [Detections(d.boxes, d.scores, 1 - d.classes) for d in _dets(split)]
    assert coco_map(split, dets).map50 == pytest.approx(0.0)


class _OracleRunner(Runner):
    """Returns the head output that decodes to the ground truth of the image it is given."""

    name = "oracle"

    def __init__(self, split: Split, imgsz: int) -> None:
        self.split, self.imgsz, self.calls = split, imgsz, 0

    @property
    def input_shape(self):
        return (1, 3, self.imgsz, self.imgsz)

    def infer(self, batch):
        from deploy.preprocess import letterbox

        rec = self.split.images[self.calls]
        self.calls += 1
        _, meta = letterbox(np.zeros((rec.height, rec.width, 3), np.uint8), (self.imgsz, self.imgsz))
        boxes = rec.boxes * meta.ratio + np.array(meta.pad * 2, np.float32)
        xywh = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1)
        scores = np.eye(2, dtype=np.float32)[rec.classes] * 0.9
        return [np.concatenate([xywh.T, scores.T])[None]]

    def close(self):
        pass


def test_evaluate_drives_a_runner_end_to_end(tmp_path):
    import cv2

    split = _split()
    for rec in split.images:
        rec.path = tmp_path / rec.path.name
        cv2.imwrite(str(rec.path), np.zeros((rec.height, rec.width, 3), np.uint8))
    with _OracleRunner(split, 64) as runner:
        result = evaluate(runner, split)
    assert runner.calls == 3 and result.images == 3
    assert result.map50 == pytest.approx(1.0) and result.map50_95 > 0.9


def test_no_detections_still_give_a_match_table_and_plain_json():
    import json

    split = _split()
    result = coco_map(split, [Detections.empty() for _ in split.images])
    assert result.per_class == {"a": 0.0, "b": 0.0}
    assert result.matches.images == 3 and result.matches.metric("map50_95") == 0.0
    as_dict = result.to_dict()
    assert "matches" not in as_dict and json.loads(json.dumps(as_dict))["map50_95"] == 0.0
