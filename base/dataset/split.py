"""A split loaded and checked: each image decoded with its labels in pixels, bad ones skipped with reasons."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from base.dataset.data_yaml import DatasetSpec
from base.dataset.images import IMAGE_SUFFIXES, list_images, read_image
from base.dataset.labels import label_path, read_labels
from base.errors import ToolchainError

logger = logging.getLogger(__name__)


@dataclass
class ImageRecord:
    """One checked image and its boxes in pixels.

    Attributes:
        path: Image file.
        height: Image height in pixels.
        width: Image width in pixels.
        classes: ``[n]`` int class ids.
        boxes: ``[n, 4]`` float32 ``x0 y0 x1 y1`` in pixels of the original image.
    """

    path: Path
    height: int
    width: int
    classes: np.ndarray
    boxes: np.ndarray


@dataclass
class Split:
    """The checked images of one split, with what was skipped and why."""

    name: str
    names: list[str]
    images: list[ImageRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Counts per class and the distribution of box sizes (COCO small/medium/large)."""
        classes = Counter(int(c) for r in self.images for c in r.classes)
        sides = np.concatenate([np.sqrt(np.prod(r.boxes[:, 2:] - r.boxes[:, :2], 1)) for r in self.images] or [[]])
        lines = [
            f"{self.name}: {len(self.images)} images, {int(sum(classes.values()))} boxes, {len(self.skipped)} skipped"
        ]
        lines += [f"  {i:>3} {n:<24} {classes.get(i, 0):>7}" for i, n in enumerate(self.names)]
        if len(sides):
            small, medium = int((sides < 32).sum()), int(((sides >= 32) & (sides < 96)).sum())
            q = np.percentile(sides, [5, 50, 95])
            lines.append(
                f"  box side (sqrt area, px): p5 {q[0]:.1f}, median {q[1]:.1f}, p95 {q[2]:.1f}; "
                f"small <32: {small}, medium: {medium}, large >=96: {len(sides) - small - medium}"
            )
        return "\n".join(lines)


def load_image_record(image: Path, nc: int) -> tuple[ImageRecord | None, list[str]]:
    """Decode one image and read its labels; ``None`` and the reasons when it must be skipped."""
    img, problem = read_image(image)
    if img is None:
        return None, [problem]
    labels, problems = read_labels(label_path(image), nc)
    if problems:
        return None, problems
    h, w = img.shape[:2]
    xywh = labels[:, 1:] * np.array([w, h, w, h], np.float32)
    boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
    return ImageRecord(image, h, w, labels[:, 0].astype(np.int64), boxes), []


def load_split(spec: DatasetSpec, split: str, strict: bool = False, limit: int | None = None) -> Split:
    """Check every image and label line of a split.

    Args:
        spec: The loaded ``data.yaml``.
        split: ``train``, ``val`` or ``test``.
        strict: Fail on the first bad image or line instead of skipping the image.
        limit: Check only the first ``limit`` images (sorted by path).

    Returns:
        The checked split; bad images are in ``skipped`` with one reason per bad line.

    Raises:
        ToolchainError: The split is absent, has no images or no usable image, or ``strict`` and
            something is bad.
    """
    if split not in spec.splits:
        raise ToolchainError(f"{spec.yaml_path}: no '{split}' split; it has {sorted(spec.splits)}")
    images = list_images(spec.splits[split])[:limit]
    if not images:
        where = ", ".join(str(s) for s in spec.splits[split])
        raise ToolchainError(
            f"{spec.yaml_path}: '{split}' has no images in {where}; expected {sorted(IMAGE_SUFFIXES)} files"
        )
    out = Split(split, spec.names)
    first_problem = ""
    for image in images:
        record, problems = load_image_record(image, spec.nc)
        if problems and strict:
            raise ToolchainError(problems[0] + " (--strict)")
        for problem in problems:
            logger.warning(problem)
        if record is None:
            out.skipped.append(image.name)
            first_problem = first_problem or problems[0]
        else:
            out.images.append(record)
    if not out.images:
        raise ToolchainError(
            f"{spec.yaml_path}: '{split}' has no usable image: all {len(images)} were skipped; the first reason: "
            f"{first_problem}" + _class_hint(first_problem, spec)
        )
    return out


def _class_hint(problem: str, spec: DatasetSpec) -> str:
    if "out of range" not in problem:
        return ""
    return f" ('names' in {spec.yaml_path.name} lists {spec.nc} classes; do the labels use more?)"
