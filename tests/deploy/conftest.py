from __future__ import annotations

import cv2
import numpy as np
import pytest


@pytest.fixture()
def make_video():
    """Writes a small MJPG .avi of gradient frames and returns its path."""

    def make(path, frames: int = 12, size: tuple[int, int] = (96, 64)) -> str:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
        for i in range(frames):
            writer.write(np.full((size[1], size[0], 3), 10 * i, np.uint8))
        writer.release()
        return str(path)

    return make
