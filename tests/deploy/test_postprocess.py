from __future__ import annotations

import numpy as np
import pytest

from deploy.postprocess import PostprocessConfig, decode, from_end_to_end, nms, postprocess
from deploy.preprocess import LetterboxMeta


def _pred(boxes_xywh, scores):
    """Head output [4 + nc, N] from per-anchor boxes and class scores."""
    return np.concatenate([np.asarray(boxes_xywh, np.float32).T, np.asarray(scores, np.float32).T])


def test_decode_multi_label_keeps_every_class_above_conf():
    pred = _pred([[50, 50, 20, 10], [10, 10, 4, 4]], [[0.9, 0.3], [0.0005, 0.002]])
    boxes, scores, classes = decode(pred, PostprocessConfig(conf=0.001, multi_label=True))
    np.testing.assert_allclose(scores, [0.9, 0.3, 0.002], rtol=1e-6)
    assert classes.tolist() == [0, 1, 1]
    np.testing.assert_allclose(boxes[0], [40, 45, 60, 55])


def test_decode_best_class_only_and_class_filter():
    pred = _pred([[50, 50, 20, 10], [10, 10, 4, 4]], [[0.9, 0.3], [0.1, 0.6]])
    _, scores, classes = decode(pred, PostprocessConfig(conf=0.25, multi_label=False))
    assert classes.tolist() == [0, 1] and scores.tolist() == pytest.approx([0.9, 0.6])
    _, _, classes = decode(pred, PostprocessConfig(conf=0.25, multi_label=False, classes=(1,)))
    assert classes.tolist() == [1]


@pytest.mark.parametrize("seed", range(5))
def test_nms_matches_torchvision_batched_nms(seed):
    torch = pytest.importorskip("torch")
    from torchvision.ops import batched_nms

    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 200, (400, 2))
    wh = rng.uniform(5, 60, (400, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = rng.permutation(400).astype(np.float32) / 400 + 0.001  # distinct scores: no tie order
    classes = rng.integers(0, 3, 400)
    order = np.argsort(-scores)
    boxes, scores, classes = boxes[order], scores[order], classes[order]
    ours = nms(boxes, scores, classes, iou=0.5, max_det=1000)
    ref = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), 0.5).numpy()
    assert ours.tolist() == ref.tolist()
    assert nms(boxes, scores, classes, iou=0.5, max_det=7).tolist() == ref[:7].tolist()


def test_nms_never_suppresses_across_classes():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    keep = nms(boxes, np.array([0.9, 0.8], np.float32), np.array([0, 1]), iou=0.5, max_det=10)
    assert keep.tolist() == [0, 1]
    keep = nms(boxes, np.array([0.9, 0.8], np.float32), np.array([1, 1]), iou=0.5, max_det=10)
    assert keep.tolist() == [0]


def test_postprocess_maps_to_original_image():
    pred = _pred([[32, 32, 16, 16]], [[0.8]])[None]
    meta = LetterboxMeta(ratio=0.5, pad=(0.0, 8.0), shape=(96, 128))
    (det,) = postprocess(pred, [meta], PostprocessConfig(conf=0.25))
    np.testing.assert_allclose(det.boxes, [[48, 32, 80, 64]])
    assert det.classes.tolist() == [0]


def test_empty_output_gives_no_detections():
    pred = _pred([[32, 32, 16, 16]], [[0.0001]])[None]
    (det,) = postprocess(pred, [LetterboxMeta(1.0, (0.0, 0.0), (64, 64))], PostprocessConfig())
    assert len(det) == 0 and det.boxes.shape == (0, 4)


def test_end_to_end_outputs_map_back_and_apply_only_stricter_settings():
    outputs = {"det_boxes": np.array([[[32, 24, 48, 40], [0, 8, 16, 24], [8, 8, 24, 24], [0, 0, 0, 0]]], np.float32),
               "det_scores": np.array([[0.9, 0.5, 0.3, 0.0]], np.float32),
               "det_classes": np.array([[2, 0, 2, -1]], np.int32), "num_dets": np.array([3], np.int32)}  # fmt: skip
    meta = LetterboxMeta(ratio=0.5, pad=(0.0, 8.0), shape=(96, 128))
    (det,) = from_end_to_end(outputs, [meta], PostprocessConfig(conf=0.001))
    assert det.classes.tolist() == [2, 0, 2] and det.scores.tolist() == pytest.approx([0.9, 0.5, 0.3])
    np.testing.assert_allclose(det.boxes[0], [64, 32, 96, 64])  # (box - pad) / ratio
    (det,) = from_end_to_end(outputs, [meta], PostprocessConfig(conf=0.4))
    assert det.scores.tolist() == pytest.approx([0.9, 0.5])
    (det,) = from_end_to_end(outputs, [meta], PostprocessConfig(conf=0.001, classes=(2,), max_det=1))
    assert det.classes.tolist() == [2] and det.scores.tolist() == pytest.approx([0.9])
    outputs["num_dets"][0] = 0
    (det,) = from_end_to_end(outputs, [meta], PostprocessConfig())
    assert len(det) == 0 and det.boxes.shape == (0, 4)
