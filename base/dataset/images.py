"""Image files of a split: listed from folders or ``.txt`` lists, and decoded with every failure named."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from base.errors import ToolchainError
from base.fileio import read_text
from base.limits import MAX_IMAGE_BYTES, read_bounded

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


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
