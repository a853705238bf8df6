"""The tiny dataset that the split and data.yaml tests write: a val folder of 60x40 images with labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest


def _write_dataset(root: Path, labels: dict[str, str], broken_image: str | None = None) -> Path:
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    for stem, text in labels.items():
        cv2.imwrite(str(root / "images" / "val" / f"{stem}.jpg"), np.full((40, 60, 3), 128, np.uint8))
        (root / "labels" / "val" / f"{stem}.txt").write_text(text)
    if broken_image:
        (root / "images" / "val" / f"{broken_image}.jpg").write_bytes(b"not a jpeg")
    yaml_path = root / "data.yaml"
    yaml_path.write_text("train: images/val\nval: images/val\nnames: [a, b]\n")
    return yaml_path


@pytest.fixture
def write_dataset() -> Callable[..., Path]:
    """``write_dataset(root, {stem: label text}, broken_image=None)``: writes the images, labels and data.yaml."""
    return _write_dataset
