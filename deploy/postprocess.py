"""YOLOv8 head output to detections: decode, class-aware NMS, boxes back to the original image.

The head output is ``[B, 4 + nc, N]``: box centre, width and height in input pixels, then one
sigmoid score per class, for the ``N`` anchor points of the three strides. Defaults follow
``yolo val`` (conf 0.001, IoU 0.7, 300 detections, one candidate per box and class above conf).

An end-to-end model (``deploy/end_to_end.py``) has done decode and NMS in its graph: its outputs
``END_TO_END_OUTPUTS`` only need mapping back to the original image (``from_end_to_end``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from base.errors import UsageError
from deploy.preprocess import LetterboxMeta

# Class offset that keeps boxes of different classes apart in one NMS pass (as ultralytics does).
CLASS_OFFSET = 7680.0
END_TO_END_OUTPUTS = ("det_boxes", "det_scores", "det_classes", "num_dets")
"""Outputs of an end-to-end graph, per image: ``det_boxes [B, K, 4]`` float32 ``x0 y0 x1 y1`` in input
pixels, ``det_scores [B, K]`` float32 sorted high to low, ``det_classes [B, K]`` int32, ``num_dets [B]``
int32; rows from ``num_dets`` on are padding (boxes and scores 0, class -1)."""


@dataclass(frozen=True)
class Detections:
    """Detections of one image, sorted by score.

    Attributes:
        boxes: ``[n, 4]`` float32 ``x0 y0 x1 y1``.
        scores: ``[n]`` float32.
        classes: ``[n]`` int64.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def empty() -> Detections:
        """No detections."""
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


@dataclass(frozen=True)
class PostprocessConfig:
    """Thresholds of decode and NMS.

    Attributes:
        conf: Minimum class score of a candidate.
        iou: IoU above which the lower-scored box of the same class is suppressed.
        max_det: Most detections kept per image.
        multi_label: One candidate per (box, class) above ``conf`` (evaluation) instead of one per
            box with its best class (live inference).
        max_candidates: Cap on candidates going into NMS, highest scores first.
        classes: Keep only these class ids (``None``: all).
    """

    conf: float = 0.001
    iou: float = 0.7
    max_det: int = 300
    multi_label: bool = True
    max_candidates: int = 30000
    classes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf <= 1.0 or not 0.0 <= self.iou <= 1.0:
            raise UsageError(f"postprocess: conf and iou must lie in [0, 1], got conf={self.conf}, iou={self.iou}")
        if self.max_det < 1:
            raise UsageError(f"postprocess: max_det must be at least 1, got {self.max_det}")


def decode(pred: np.ndarray, cfg: PostprocessConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates of one image above ``cfg.conf``: xyxy boxes, scores and classes.

    Args:
        pred: ``[4 + nc, N]`` head output of one image.
        cfg: Thresholds.

    Returns:
        ``boxes [k, 4]``, ``scores [k]``, ``classes [k]``, highest scores first, ``k`` at most
        ``cfg.max_candidates``.
    """
    scores_all = pred[4:]
    if cfg.multi_label:
        cls, idx = np.nonzero(scores_all > cfg.conf)
        scores = scores_all[cls, idx]
    else:
        cls = scores_all.argmax(0)
        scores = np.take_along_axis(scores_all, cls[None], 0)[0]
        idx = np.flatnonzero(scores > cfg.conf)
        cls, scores = cls[idx], scores[idx]
    if cfg.classes is not None:
        keep = np.isin(cls, cfg.classes)
        cls, idx, scores = cls[keep], idx[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")[: cfg.max_candidates]
    cls, idx, scores = cls[order], idx[order], scores[order]
    xywh = pred[:4, idx].T
    boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
    return boxes.astype(np.float32), scores.astype(np.float32), cls.astype(np.int64)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, max_det: int) -> np.ndarray:
    """Class-aware greedy NMS; indices of the kept boxes, highest score first.

    Boxes of different classes are shifted apart by ``class * CLASS_OFFSET`` so one pass of
    OpenCV's NMS (present in every OpenCV 4.x, JetPack's included) never compares them.
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    shifted = boxes.astype(np.float64) + (classes.astype(np.float64) * CLASS_OFFSET)[:, None]
    xywh = np.concatenate([shifted[:, :2], shifted[:, 2:] - shifted[:, :2]], 1)
    keep = cv2.dnn.NMSBoxes(xywh, scores.astype(np.float32), 0.0, iou)
    return np.asarray(keep, np.int64).reshape(-1)[:max_det]


def scale_boxes(boxes: np.ndarray, meta: LetterboxMeta) -> np.ndarray:
    """Map boxes from network input pixels back to the original image, clipped to it."""
    out = (boxes - np.array(meta.pad * 2, np.float32)) / np.float32(meta.ratio)
    h, w = meta.shape
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out


def postprocess(pred: np.ndarray, metas: list[LetterboxMeta], cfg: PostprocessConfig) -> list[Detections]:
    """Decode, NMS and rescale a batch of head outputs ``[B, 4 + nc, N]``.

    Example:
        >>> dets = postprocess(runner.infer(batch)[0], metas, PostprocessConfig(conf=0.25, multi_label=False))
    """
    out = []
    for image_pred, meta in zip(pred, metas):
        boxes, scores, classes = decode(image_pred, cfg)
        keep = nms(boxes, scores, classes, cfg.iou, cfg.max_det)
        out.append(Detections(scale_boxes(boxes[keep], meta), scores[keep], classes[keep]))
    return out


def from_end_to_end(
    outputs: dict[str, np.ndarray], metas: list[LetterboxMeta], cfg: PostprocessConfig
) -> list[Detections]:
    """Detections of an end-to-end graph's outputs (``END_TO_END_OUTPUTS`` by name), mapped back to each image.

    The graph has applied its own conf, IoU and ``max_det``; here only a stricter ``cfg.conf``, a
    smaller ``cfg.max_det`` and ``cfg.classes`` (after the graph's ``max_det``) still apply.
    """
    out = []
    for i, meta in enumerate(metas):
        n = int(outputs["num_dets"][i])
        scores = outputs["det_scores"][i, :n].astype(np.float32)
        keep = np.flatnonzero(scores > cfg.conf)
        classes = outputs["det_classes"][i, keep].astype(np.int64)
        if cfg.classes is not None:
            keep, classes = keep[np.isin(classes, cfg.classes)], classes[np.isin(classes, cfg.classes)]
        keep, classes = keep[: cfg.max_det], classes[: cfg.max_det]
        boxes = outputs["det_boxes"][i, keep].astype(np.float32).reshape(-1, 4)
        out.append(Detections(scale_boxes(boxes, meta), scores[keep], classes))
    return out
