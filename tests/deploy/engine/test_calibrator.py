from __future__ import annotations

import cv2
import numpy as np
import pytest

from base.errors import ToolchainError
from deploy.engine.calibrator import ImageBatcher


def test_batches_are_full_letterboxed_and_bounded(tmp_path):
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), np.full((30, 60, 3), 50 * i, np.uint8))
    (tmp_path / "bad.jpg").write_bytes(b"x")
    batcher = ImageBatcher(tmp_path, (4, 3, 32, 32), max_batches=10)
    batches = list(batcher)
    assert len(batcher) == 2 and len(batches) == 2
    assert all(b.shape == (4, 3, 32, 32) and b.dtype == np.float32 for b in batches)
    assert batches[0].max() <= 1.0 and batches[0][0, 0, 0, 0] == pytest.approx(114 / 255)  # grey padding on top
    assert len(list(ImageBatcher(tmp_path, (2, 3, 32, 32), max_batches=1))) == 1


def test_empty_folder(tmp_path):
    with pytest.raises(ToolchainError, match="no calibration images"):
        ImageBatcher(tmp_path, (1, 3, 32, 32), 4)
