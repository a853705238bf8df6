from __future__ import annotations

import numpy as np
import pytest

from deploy.postprocess import scale_boxes
from deploy.preprocess import PAD_VALUE, letterbox, preprocess


@pytest.mark.parametrize(("h", "w"), [(300, 400), (400, 300), (384, 384), (100, 50)])
def test_letterbox_fits_and_centres(h, w):
    img = np.zeros((h, w, 3), np.uint8)
    out, meta = letterbox(img, (384, 384))
    assert out.shape == (384, 384, 3)
    assert meta.ratio == pytest.approx(min(384 / h, 384 / w))
    left, top = meta.pad
    assert abs(left - (384 - round(w * meta.ratio)) / 2) <= 0.5 and abs(top - (384 - round(h * meta.ratio)) / 2) <= 0.5
    if left >= 1:
        assert (out[:, 0] == PAD_VALUE).all()
    if top >= 1:
        assert (out[0] == PAD_VALUE).all()


def test_boxes_map_back_to_the_original():
    img = np.zeros((300, 400, 3), np.uint8)
    _, meta = letterbox(img, (384, 384))
    original = np.array([[10, 20, 110, 220]], np.float32)
    net = original * meta.ratio + np.array(meta.pad * 2, np.float32)
    np.testing.assert_allclose(scale_boxes(net, meta), original, atol=1e-4)


def test_preprocess_is_rgb_nchw_unit_float():
    img = np.zeros((64, 64, 3), np.uint8)
    img[..., 0] = 255  # blue in BGR
    batch, metas = preprocess([img, img], (64, 64))
    assert batch.shape == (2, 3, 64, 64) and batch.dtype == np.float32
    assert batch[:, 2].min() == 1.0 and batch[:, 0].max() == 0.0  # blue is the last RGB channel
    assert metas[0].ratio == 1.0 and metas[0].pad == (0.0, 0.0)
