"""COCO mAP of any ``Runner`` on a YOLO-format split, computed by pycocotools.

Example:
    >>> split = load_split(load_data_yaml("data.yaml"), "val")
    >>> with OnnxRuntimeRunner("model.onnx") as runner:
    ...     result = evaluate(runner, split, imgsz=384)
    >>> print(result.table())
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from dataclasses import asdict, dataclass, field, replace

import cv2
import numpy as np
from tqdm import tqdm

from base.dataset import Split
from base.errors import ToolchainError
from deploy.bootstrap import MatchTable
from deploy.end_to_end import warn_if_graph_differs
from deploy.postprocess import END_TO_END_OUTPUTS, Detections, PostprocessConfig, from_end_to_end, postprocess
from deploy.preprocess import Preprocessor
from deploy.runtime.base import Runner

logger = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """COCO metrics of one model on one split (AP values in [0, 1]; ``None`` where undefined).

    Attributes:
        map50_95: AP averaged over IoU 0.50:0.95.
        map50: AP at IoU 0.50.
        per_class: Class name to AP50-95 (``None`` for a class absent from the ground truth).
        ap_small: AP50-95 of boxes under 32x32 px.
        ap_medium: AP50-95 of boxes between 32x32 and 96x96 px.
        ap_large: AP50-95 of boxes over 96x96 px.
        images: Number of images evaluated.
        seconds: Wall time of inference and post-processing.
        matches: Per-image matches, for ``deploy.bootstrap.paired_bootstrap`` (not serialised).
    """

    map50_95: float
    map50: float
    per_class: dict[str, float | None]
    ap_small: float | None
    ap_medium: float | None
    ap_large: float | None
    images: int
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    matches: MatchTable | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """Plain-JSON form (without the match table)."""
        return {k: v for k, v in asdict(replace(self, matches=None)).items() if k != "matches"}

    def table(self) -> str:
        """A human-readable summary."""
        fmt = lambda v: "  n/a" if v is None else f"{v:.4f}"  # noqa: E731
        lines = [
            f"mAP50-95 {self.map50_95:.4f}  mAP50 {self.map50:.4f}  "
            f"AP small {fmt(self.ap_small)}  medium {fmt(self.ap_medium)}  large {fmt(self.ap_large)}  "
            f"({self.images} images, {self.seconds:.1f} s)"
        ]
        lines += [f"  {name:<24} AP50-95 {fmt(ap)}" for name, ap in self.per_class.items()]
        return "\n".join(lines)


def predict_split(
    runner: Runner, split: Split, imgsz: int | None = None, cfg: PostprocessConfig | None = None, batch: int = 1
) -> list[Detections]:
    """Run the runner over every image of a split and return its detections in image order.

    An end-to-end model (``runner.end_to_end``) gets uint8 images and its detections are only mapped back.
    """
    cfg = cfg or PostprocessConfig()
    h, w = runner.image_size
    if h is None or w is None:
        if imgsz is None:
            raise ToolchainError(f"{runner.name}: the model's input size is dynamic; pass imgsz")
        h = w = imgsz
    e2e = runner.end_to_end
    if e2e:
        warn_if_graph_differs(getattr(runner, "path", None), cfg)
    batch = runner.max_batch or batch
    prep = Preprocessor((h, w), batch, uint8_nhwc=e2e, allocate=runner.host_buffer)
    out: list[Detections] = []
    records = split.images
    for start in tqdm(range(0, len(records), batch), desc=f"eval {runner.name}", unit="batch", leave=False):
        chunk = records[start : start + batch]
        images = [cv2.imread(str(r.path), cv2.IMREAD_COLOR) for r in chunk]
        tensor, metas = prep(images)
        if len(chunk) < batch and runner.max_batch:
            tensor = np.concatenate([tensor, np.zeros((batch - len(chunk), *tensor.shape[1:]), tensor.dtype)])
        outputs = [o[: len(chunk)] for o in runner.infer(tensor)]
        if e2e:
            out += from_end_to_end(dict(zip(runner.output_names or END_TO_END_OUTPUTS, outputs)), metas, cfg)
        else:
            out += postprocess(outputs[0], metas, cfg)
    return out


def _coco_gt(split: Split) -> dict:
    images, annotations = [], []
    for i, rec in enumerate(split.images):
        images.append({"id": i, "width": rec.width, "height": rec.height})
        for cls, (x0, y0, x1, y1) in zip(rec.classes, rec.boxes):
            w, h = float(x1 - x0), float(y1 - y0)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": int(cls) + 1,
                    "bbox": [float(x0), float(y0), w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(split.names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _coco_dt(detections: list[Detections]) -> list[dict]:
    out = []
    for i, det in enumerate(detections):
        xywh = np.concatenate([det.boxes[:, :2], det.boxes[:, 2:] - det.boxes[:, :2]], 1)
        for box, score, cls in zip(xywh.tolist(), det.scores.tolist(), det.classes.tolist()):
            out.append({"id": len(out) + 1, "image_id": i, "category_id": cls + 1, "bbox": box, "score": score,
                        "area": box[2] * box[3], "iscrowd": 0})  # fmt: skip
    return out


def _ap(precision: np.ndarray) -> float | None:
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else None


def _coco_eval(split: Split, detections: list[Detections], max_det: int):
    """pycocotools' ``COCOeval`` after ``evaluate()`` and ``accumulate()`` (also with no detection at all)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = _coco_gt(split)
        gt.createIndex()
        dt = COCO()  # what loadRes builds for boxes; loadRes itself refuses an empty list
        dt.dataset = {"images": gt.dataset["images"], "categories": gt.dataset["categories"],
                      "annotations": _coco_dt(detections)}  # fmt: skip
        dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        ev.params.maxDets = [1, 10, max_det]
        ev.evaluate()
        ev.accumulate()
    return ev


def coco_map(split: Split, detections: list[Detections], max_det: int = 300) -> EvalResult:
    """COCO AP of detections against the split's YOLO labels (pycocotools, 101-point interpolation).

    The result keeps the per-image match table (``matches``) for paired bootstrap intervals.
    """
    ev = _coco_eval(split, detections, max_det)
    # [iou, recall, class, area (all, small, medium, large), maxdet]; read at our max_det, since
    # pycocotools' own stats[0] is hard-wired to 100 detections.
    precision = ev.eval["precision"][..., -1]
    per_class = {n: _ap(precision[:, :, k, 0]) for k, n in enumerate(split.names)}
    return EvalResult(
        _ap(precision[..., 0]) or 0.0,
        _ap(precision[0, ..., 0]) or 0.0,
        per_class,
        _ap(precision[..., 1]),
        _ap(precision[..., 2]),
        _ap(precision[..., 3]),
        len(split.images),
        matches=MatchTable.from_cocoeval(ev, len(split.images)),
    )


def evaluate(
    runner: Runner, split: Split, imgsz: int | None = None, cfg: PostprocessConfig | None = None, batch: int = 1
) -> EvalResult:
    """Predict every image of ``split`` with ``runner`` and score it with COCO mAP.

    Args:
        runner: Any backend; its input size is used unless dynamic.
        split: Checked images and labels (``base.dataset.load_split``).
        imgsz: Square input size for a model with a dynamic input size.
        cfg: Decode and NMS thresholds (default: ``yolo val``'s).
        batch: Batch size for a model with a dynamic batch.

    Returns:
        mAP50-95, mAP50, per-class and per-size AP.
    """
    cfg = cfg or PostprocessConfig()
    start = time.perf_counter()
    detections = predict_split(runner, split, imgsz, cfg, batch)
    seconds = time.perf_counter() - start
    result = coco_map(split, detections, cfg.max_det)
    result.seconds = seconds
    logger.info(
        "Evaluated %s on %d images in %.1f s: mAP50-95 %.4f", runner.name, result.images, seconds, result.map50_95
    )
    return result
