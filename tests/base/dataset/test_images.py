"""Image decoding: a JPEG is judged whole by its markers, not by where the file ends."""

from __future__ import annotations

import cv2
import numpy as np

from base.dataset.images import read_image


def test_jpeg_with_bytes_after_its_end_marker_is_whole(tmp_path):
    whole = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    (tmp_path / "trailer.jpg").write_bytes(whole + b"camera trailer")
    image, problem = read_image(tmp_path / "trailer.jpg")
    assert problem is None and image.shape == (8, 8, 3)
