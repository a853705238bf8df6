"""YOLO label files: where an image's labels live, and each ``class cx cy w h`` line checked."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from base.errors import ToolchainError
from base.fileio import read_text


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
