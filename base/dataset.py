"""Datasets in ultralytics' YOLO format: ``data.yaml`` loading and label checks, torch-free.

The evaluator reads its ground truth through this module, and the training half checks data with
it before handing the same ``data.yaml`` to ultralytics.

Example:
    >>> spec = load_data_yaml("../shared/datasets/road-signs/data.yaml")
    >>> split = load_split(spec, "val")
    >>> print(split.summary())
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from base.errors import ToolchainError
from base.fileio import read_text, read_yaml_mapping
from base.limits import MAX_IMAGE_BYTES, check_class_count, read_bounded

logger = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class DatasetSpec:
    """A resolved ``data.yaml``: absolute split sources and class names.

    Attributes:
        yaml_path: The file it was read from.
        root: The folder the split paths are relative to.
        splits: Split name (``train``, ``val``, ``test``) to its image folders or list files.
        names: Class names, index = class id.
    """

    yaml_path: Path
    root: Path
    splits: dict[str, list[Path]]
    names: list[str]

    @property
    def nc(self) -> int:
        """Number of classes."""
        return len(self.names)


def _short(value: object, width: int = 80) -> str:
    """A value's repr cut to ``width`` characters, for one-line messages."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _names(raw: object, path: Path) -> list[str]:
    if isinstance(raw, (list, dict)):
        check_class_count(len(raw), f"{path}: 'names'")
    if isinstance(raw, dict) and raw:
        bad = [k for k in raw if not isinstance(k, int) or isinstance(k, bool)]
        if bad:
            raise ToolchainError(
                f"{path}: 'names' keys must be integer class ids, got {bad[0]!r} ({type(bad[0]).__name__}); "
                "write them unquoted: {0: name, 1: name}"
            )
        keys = sorted(raw)
        if keys != list(range(len(keys))):
            missing = next(i for i, k in enumerate(keys) if i != k)
            raise ToolchainError(f"{path}: 'names' keys must be 0..{len(keys) - 1} without gaps; {missing} is missing")
        raw = [raw[k] for k in keys]
    if not isinstance(raw, list) or not raw:
        raise ToolchainError(
            f"{path}: 'names' must be a non-empty list or a dict of class id to name, got {_short(raw)}"
        )
    bad_names = [n for n in raw if not isinstance(n, (str, int, float)) or isinstance(n, bool)]
    if bad_names:
        raise ToolchainError(f"{path}: 'names' holds {_short(bad_names[0])}; every class name must be a string")
    return [str(n) for n in raw]


def _root(raw: dict, path: Path) -> Path:
    given = raw.get("path")
    if given in (None, ""):
        return path.parent.resolve()
    if not isinstance(given, str):
        raise ToolchainError(f"{path}: 'path' must be a folder path (a string), got {given!r}")
    root = Path(given)
    return root if root.is_absolute() else Path.cwd() / root


def _split_sources(raw: dict, split: str, root: Path, path: Path) -> list[Path]:
    entries = raw[split] if isinstance(raw[split], list) else [raw[split]]
    sources = []
    for entry in entries:
        if not isinstance(entry, str) or not entry:
            raise ToolchainError(
                f"{path}: '{split}' must be a folder or a .txt list of images (or a list of them), got {entry!r}"
            )
        try:
            src = (root / entry).resolve()
            exists, is_file = src.exists(), src.is_file()
        except (OSError, ValueError) as exc:  # a name too long, a NUL byte
            raise ToolchainError(f"{path}: '{split}' is not a usable path {entry!r} ({exc})") from exc
        if not exists:
            shown = str(src) if str(src).isprintable() else repr(str(src))  # one line, even for a name with a newline
            raise ToolchainError(f"{path}: '{split}' points to {shown}, which does not exist; fix the path in the YAML")
        if is_file and src.suffix.lower() != ".txt":
            raise ToolchainError(
                f"{path}: '{split}' points to the file {src}; expected a folder of images or a .txt file "
                "listing one image path a line"
            )
        sources.append(src)
    return sources


def load_data_yaml(path: str | Path) -> DatasetSpec:
    """Read and resolve an ultralytics-style ``data.yaml``.

    Split paths are resolved against the ``path:`` key when present (relative to the working
    directory, as ultralytics does), else against the YAML's own folder.

    Args:
        path: The ``data.yaml`` file.

    Returns:
        The resolved spec.

    Raises:
        ToolchainError: The file is missing or unreadable, a key is missing, or a split path does
            not exist.
    """
    path = Path(path)
    hint = "; run 'make data' for the synthetic set or pass DATA=path/to/data.yaml"
    raw = read_yaml_mapping(path, "data.yaml", ToolchainError, hint)
    if not raw:
        raise ToolchainError(f"{path}: expected a mapping with 'train', 'val' and 'names', got an empty file")
    for key in ("train", "val", "names"):
        if key not in raw:
            raise ToolchainError(f"{path}: missing key '{key}' (expected 'train', 'val' and 'names')")
    names = _names(raw["names"], path)
    if "nc" in raw and raw["nc"] != len(names):
        raise ToolchainError(f"{path}: 'nc' is {raw['nc']!r} but 'names' lists {len(names)} classes; make them agree")
    root = _root(raw, path)
    splits = {split: _split_sources(raw, split, root, path) for split in ("train", "val", "test") if raw.get(split)}
    return DatasetSpec(path, root, splits, names)


def list_images(sources: list[Path]) -> list[Path]:
    """Image files of a split: folders are searched recursively, ``.txt`` files list one path a line."""
    images: list[Path] = []
    for src in sources:
        if src.is_dir():
            images += sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            lines = [ln.strip() for ln in read_text(src, "image list").splitlines() if ln.strip()]
            images += [(src.parent / ln).resolve() for ln in lines]
    return images


def label_path(image: Path) -> Path:
    """The label file of an image: the last ``images`` folder replaced by ``labels``, suffix ``.txt``."""
    parts = list(image.parts)
    if "images" not in parts:
        return image.with_suffix(".txt")
    i = len(parts) - 1 - parts[::-1].index("images")
    parts[i] = "labels"
    return Path(*parts).with_suffix(".txt")


def parse_label_line(line: str, nc: int) -> tuple[list[float] | None, str | None]:
    """Check one ``class cx cy w h`` line; return the values, or the reason it is wrong."""
    fields = line.split()
    if len(fields) != 5:
        return None, f"expected 5 fields 'class cx cy w h', got {len(fields)}"
    try:
        values = [float(f) for f in fields]
    except ValueError:
        return None, f"non-numeric field in {line.strip()!r}"
    if not all(math.isfinite(v) for v in values):
        return None, f"non-finite number (nan or inf) in {line.strip()!r}"
    cls = values[0]
    if cls != int(cls) or not 0 <= cls < nc:
        return None, f"class id {fields[0]} out of range: expected an integer in [0, {nc - 1}]"
    cx, cy, w, h = values[1:]
    if not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)):
        return None, f"coordinates {fields[1:]} outside [0, 1]: expected normalized cx cy w h"
    if w <= 0 or h <= 0:
        return None, f"width and height must be positive, got {fields[3]} {fields[4]}"
    return values, None


def read_labels(path: Path, nc: int) -> tuple[np.ndarray, list[str]]:
    """Read a label file: ``[n, 5]`` float32 rows and one ``file:line: problem`` string per bad line.

    A missing or empty label file is an image with no objects.
    """
    rows, problems = [], []
    if path.exists():  # a FIFO or a link to a device is refused by read_text, not taken for a missing file
        try:
            text = read_text(path, "label file")
        except ToolchainError as exc:
            return np.zeros((0, 5), np.float32), [str(exc)]
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            values, problem = parse_label_line(line, nc)
            if problem:
                problems.append(f"{path}:{number}: {problem}")
            else:
                rows.append(values)
    return np.array(rows, np.float32).reshape(-1, 5), problems


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


def _jpeg_complete(data: bytes) -> bool:
    """Whether a JPEG's last scan is followed by its end-of-image marker (``FFD9``).

    Entropy-coded data cannot hold ``FFD9`` (a ``FF`` byte there is followed by ``00`` or a restart
    marker), so an end marker after the last start-of-scan (``FFDA``) means the file is whole, even
    with bytes a camera appended after it.
    """
    last_scan = data.rfind(b"\xff\xda")
    return last_scan >= 0 and data.find(b"\xff\xd9", last_scan) >= 0


def read_image(path: Path) -> tuple[np.ndarray | None, str | None]:
    """Decode an image file as BGR; ``None`` and the reason (naming the file) when it cannot be used.

    A truncated JPEG is refused here: libjpeg would decode it with grey rows and a warning that
    does not name the file.
    """
    try:
        data = read_bounded(path, "image", MAX_IMAGE_BYTES)
    except ToolchainError as exc:  # a device or FIFO (read without end), too big, unreadable
        return None, str(exc)
    if not data:
        return None, f"{path}: empty file; remove or replace it"
    if data[:2] == b"\xff\xd8" and not _jpeg_complete(data):
        return None, f"{path}: truncated JPEG (no end-of-image marker); remove or replace it"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None, f"{path}: image does not decode (corrupt or not an image); remove or replace it"
    return image, None


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
