"""Paired bootstrap intervals for mAP differences, from the per-image matches pycocotools computes.

A difference between two models scored on the same images is real only when its interval excludes 0.
Each resample draws image indices with replacement, the same indices for both models, and recomputes
COCO AP from per-image match tables: the arithmetic of ``COCOeval.accumulate`` on the resampled images
(a copy of an image counts as another image), without rerunning the matching.

One model's resampled AP sits a little above its full-set AP (the interpolated precision is an upper
envelope, a convex function of the curve: about 0.7 standard errors on small sets); in a paired
difference the two models' shifts mostly cancel.

Example:
    >>> a, b = evaluate(runner_a, split), evaluate(runner_b, split)
    >>> diff = paired_bootstrap(a.matches, b.matches)
    >>> print(diff.describe())      # "+0.0031 [-0.0042, +0.0101] within noise"
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from base.errors import ToolchainError

METRICS = {"map50_95": (0, slice(None)), "map50": (0, slice(0, 1)), "ap_small": (1, slice(None))}
"""Metric name to (area-range index as in pycocotools: 0 all, 1 small; IoU-threshold slice)."""


@dataclass
class CategoryMatches:
    """One category at one area range: every detection of every image, grouped by image.

    Attributes:
        scores: ``(D,)`` detection scores; an image's detections are contiguous, in image order.
        tp: ``(T, D)`` matched to a ground-truth box and not ignored, at each IoU threshold.
        fp: ``(T, D)`` unmatched and not ignored.
        start: ``(I + 1,)`` offset of each image's first detection in ``scores``.
        gt: ``(I,)`` ground-truth boxes that count (not ignored) in each image.
    """

    scores: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    start: np.ndarray
    gt: np.ndarray


@dataclass
class MatchTable:
    """Per-image matches of one model on one split, for every category and the area ranges of ``METRICS``.

    Attributes:
        images: Images of the split.
        rec_thresholds: pycocotools' recall thresholds (101 points).
        areas: ``areas[a][k]`` is category ``k`` at area-range index ``a``.
    """

    images: int
    rec_thresholds: np.ndarray
    areas: list[list[CategoryMatches]]

    @classmethod
    def from_cocoeval(cls, ev, images: int) -> MatchTable:
        """Read ``ev.evalImgs`` after ``ev.evaluate()``; ``images`` ids run 0..images-1 in split order."""
        p = ev.params
        n_area, n_iou = len(p.areaRng), len(p.iouThrs)
        areas = []
        for a in range(1 + max(area for area, _ in METRICS.values())):
            cats = []
            for k in range(len(p.catIds)):
                entries = ev.evalImgs[(k * n_area + a) * images : (k * n_area + a + 1) * images]
                cats.append(_category(entries, n_iou))
            areas.append(cats)
        return cls(images, np.asarray(p.recThrs, float), areas)

    def metric(self, name: str, sample: np.ndarray | None = None) -> float:
        """``name`` (a key of ``METRICS``) on the images ``sample`` (indices, repeats allowed; all by default).

        Equals pycocotools' value on a split made of those images in that order; 0.0 where no
        category has a ground-truth box among them.
        """
        if name not in METRICS:
            raise ToolchainError(f"bootstrap: metric must be one of {list(METRICS)}, got '{name}'")
        area, ious = METRICS[name]
        sample = np.arange(self.images) if sample is None else np.asarray(sample)
        per_cat = [_category_precision(c, sample, self.rec_thresholds, ious) for c in self.areas[area]]
        valid = [q.mean() for q in per_cat if q is not None]
        return float(np.mean(valid)) if valid else 0.0


def _category(entries: list, n_iou: int) -> CategoryMatches:
    scores, matched, ignored, counts, gt = [], [], [], [], []
    for e in entries:
        if e is None:  # neither a box nor a detection of this category in this image
            counts.append(0)
            gt.append(0)
            continue
        scores.append(np.asarray(e["dtScores"], float))
        matched.append(np.asarray(e["dtMatches"]).reshape(n_iou, -1) > 0)
        ignored.append(np.asarray(e["dtIgnore"]).reshape(n_iou, -1).astype(bool))
        counts.append(len(e["dtScores"]))
        gt.append(int(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0)))
    m = np.concatenate(matched, 1) if matched else np.zeros((n_iou, 0), bool)
    ig = np.concatenate(ignored, 1) if ignored else np.zeros((n_iou, 0), bool)
    return CategoryMatches(
        np.concatenate(scores) if scores else np.zeros(0), m & ~ig, ~m & ~ig,
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), np.asarray(gt, np.int64),
    )  # fmt: skip


def _gather(start: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """Detection indices of the sampled images, image after image (a repeated image repeats its detections)."""
    first, lengths = start[sample], start[sample + 1] - start[sample]
    total = int(lengths.sum())
    offsets = np.repeat(first - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return offsets + np.arange(total)


def _category_precision(c: CategoryMatches, sample: np.ndarray, rec: np.ndarray, ious: slice) -> np.ndarray | None:
    """Interpolated precision ``(T, R)`` as ``COCOeval.accumulate`` computes it; ``None`` without ground truth."""
    npig = int(c.gt[sample].sum())
    if npig == 0:
        return None
    idx = _gather(c.start, sample)
    idx = idx[np.argsort(-c.scores[idx], kind="mergesort")]
    tp = np.cumsum(c.tp[ious][:, idx], axis=1, dtype=np.int32)  # integer sums: exact, and 3x faster than float
    fp = np.cumsum(c.fp[ious][:, idx], axis=1, dtype=np.int32)
    q = np.zeros((tp.shape[0], len(rec)))
    if idx.size == 0:
        return q
    recall = tp / npig
    precision = tp / (fp + tp + np.spacing(1))
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # the envelope from the right
    for t in range(tp.shape[0]):
        at = np.searchsorted(recall[t], rec, side="left")
        inside = at < idx.size
        q[t, inside] = precision[t, at[inside]]
    return q


@dataclass
class Difference:
    """``a - b`` of one metric on the same images, with its paired bootstrap interval.

    Attributes:
        metric: The metric (a key of ``METRICS``).
        delta: ``a - b`` on all images.
        low: Lower end of the interval.
        high: Upper end of the interval.
        confidence: Coverage of the interval (e.g. 0.95).
        resamples: Bootstrap resamples drawn.
        images: Images in each resample.
    """

    metric: str
    delta: float
    low: float
    high: float
    confidence: float
    resamples: int
    images: int

    @property
    def real(self) -> bool:
        """The interval excludes 0."""
        return self.low > 0 or self.high < 0

    def describe(self) -> str:
        """``+0.0031 [-0.0042, +0.0101] within noise`` (or ``real``)."""
        return f"{self.delta:+.4f} [{self.low:+.4f}, {self.high:+.4f}] {'real' if self.real else 'within noise'}"

    def to_dict(self) -> dict:
        """Plain-JSON form, with ``real``."""
        return {**self.__dict__, "real": self.real}


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


class Resamples:
    """One set of image resamples shared by several models: each model's metric is computed once per
    resample, and any pair's difference is read from those values (many pairs, one pass per model).

    Example:
        >>> boot = Resamples(images=140)
        >>> boot.add("fp32", fp32.matches); boot.add("qat", qat.matches)
        >>> boot.difference("qat", "fp32").describe()
    """

    def __init__(self, images: int, metric: str = "map50_95", resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> None:  # fmt: skip
        if metric not in METRICS:
            raise ToolchainError(f"bootstrap: metric must be one of {list(METRICS)}, got '{metric}'")
        if resamples < 10:
            raise ToolchainError(f"bootstrap: resamples must be at least 10, got {resamples}")
        if not 0 < confidence < 1:
            raise ToolchainError(f"bootstrap: confidence must be in (0, 1), got {confidence}")
        self.images, self.metric, self.confidence = images, metric, confidence
        self.samples = np.random.default_rng(seed).integers(0, images, (resamples, images))
        self.values: dict[str, np.ndarray] = {}
        self.full: dict[str, float] = {}

    def add(self, name: str, table: MatchTable) -> None:
        """Score ``table`` on every resample (and on all images)."""
        if table.images != self.images:
            raise ToolchainError(
                f"bootstrap: '{name}' was scored on {table.images} images, the others on {self.images}: "
                "the models were scored on different splits"
            )
        self.values[name] = np.array([table.metric(self.metric, s) for s in self.samples])
        self.full[name] = table.metric(self.metric)

    def add_mean(self, name: str, members: list[str]) -> None:
        """A model whose metric is the mean of ``members``' metrics on every resample (and on all images),
        e.g. one recipe trained at several seeds: its difference to another model is then the mean of the
        members' differences, resample by resample. The interval covers the images' sampling only, not
        the spread between seeds (which the members' own differences show).

        Raises:
            ToolchainError: No members, or a member not added yet.
        """
        missing = [m for m in members if m not in self.values]
        if not members or missing:
            raise ToolchainError(f"bootstrap: the mean '{name}' needs added models, got {members or 'none'}"
                                 + (f" ({', '.join(missing)} not added)" if missing else ""))  # fmt: skip
        self.values[name] = np.mean([self.values[m] for m in members], axis=0)
        self.full[name] = float(np.mean([self.full[m] for m in members]))

    def difference(self, a: str, b: str) -> Difference:
        """``a - b`` with its paired percentile interval."""
        low, high = _interval(self.values[a] - self.values[b], self.confidence)
        return Difference(self.metric, self.full[a] - self.full[b], low, high, self.confidence, len(self.samples),
                          self.images)  # fmt: skip

    def interval(self, name: str) -> tuple[float, float]:
        """Percentile interval of one model's metric."""
        return _interval(self.values[name], self.confidence)


def paired_bootstrap(
    a: MatchTable, b: MatchTable, metric: str = "map50_95", resamples: int = 1000, confidence: float = 0.95,
    seed: int = 0,
) -> Difference:  # fmt: skip
    """Percentile interval of ``metric(a) - metric(b)`` over image resamples shared by both models.

    Raises:
        ToolchainError: The tables are of different splits, or an argument is out of range.
    """
    boot = Resamples(a.images, metric, resamples, confidence, seed)
    boot.add("a", a)
    boot.add("b", b)
    return boot.difference("a", "b")


def bootstrap_interval(
    table: MatchTable, metric: str = "map50_95", resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of one model's ``metric`` over image resamples."""
    boot = Resamples(table.images, metric, resamples, confidence, seed)
    boot.add("model", table)
    return boot.interval("model")
