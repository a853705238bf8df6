from __future__ import annotations

import cv2
import numpy as np
import pytest

from base.errors import UsageError
from deploy.postprocess import scale_boxes
from deploy.preprocess import PAD_VALUE, Preprocessor, letterbox, preprocess


def _old_letterbox(img, shape):
    """deploy/preprocess.py's letterbox before the kept buffers (commit 466471a), verbatim."""
    h0, w0 = img.shape[:2]
    r = min(shape[0] / h0, shape[1] / w0)
    w1, h1 = int(round(w0 * r)), int(round(h0 * r))
    if (w1, h1) != (w0, h0):
        img = cv2.resize(img, (w1, h1), interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
    dw, dh = shape[1] - w1, shape[0] - h1
    top, left = int(round(dh / 2 - 0.1)), int(round(dw / 2 - 0.1))
    bottom, right = dh - top, dw - left
    if dw or dh:
        img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return img, (r, (float(left), float(top)), (h0, w0))


def _old_preprocess(images, shape):
    boxed = [_old_letterbox(img, shape) for img in images]
    batch = np.stack([b[0] for b in boxed])[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32) * np.float32(1 / 255), [b[1] for b in boxed]


SHAPES = [(1080, 1920), (300, 400), (640, 640), (100, 50), (641, 3), (720, 1281)]


def _image(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), np.uint8)


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


@pytest.mark.parametrize("shape", SHAPES)
def test_preprocess_is_bit_identical_to_the_old_one(shape):
    images = [_image(shape, 0), _image(shape, 1)]
    old, old_metas = _old_preprocess(images, (640, 640))
    new, metas = preprocess(images, (640, 640))
    assert new.dtype == np.float32 and new.shape == old.shape and new.flags.c_contiguous
    np.testing.assert_array_equal(_bits(new), _bits(old))
    assert [(m.ratio, m.pad, m.shape) for m in metas] == old_metas


def test_kept_buffers_stay_bit_identical_when_the_geometry_changes():
    prep = Preprocessor((640, 640))
    for i, shape in enumerate([(1080, 1920), (1080, 1920), (1920, 1080), (640, 640), (1080, 1920)]):
        img = _image(shape, i)
        batch, _ = prep([img])
        np.testing.assert_array_equal(_bits(batch), _bits(_old_preprocess([img], (640, 640))[0]))


@pytest.mark.parametrize("shape", SHAPES[:4])
def test_uint8_canvas_is_the_old_letterbox(shape):
    prep = Preprocessor((384, 384), batch=2, uint8_nhwc=True)
    for seed in range(2):  # the second round reuses the canvases
        images = [_image(shape, seed), _image(shape[::-1], seed)]
        batch, metas = prep(images)
        assert batch.dtype == np.uint8 and batch.shape == (2, 384, 384, 3)
        for img, canvas in zip(images, batch):
            np.testing.assert_array_equal(canvas, _old_letterbox(img, (384, 384))[0])


def test_a_slot_is_left_alone_until_its_turn_and_buffers_come_from_allocate():
    made = []

    def allocate(shape, dtype):
        made.append((shape, np.dtype(dtype)))
        return np.empty(shape, dtype)

    prep = Preprocessor((64, 64), slots=3, allocate=allocate)
    assert made == [((1, 3, 64, 64), np.dtype(np.float32))] * 3
    first, _ = prep([_image((64, 64), 0)])
    kept = first.copy()
    prep([_image((64, 64), 1)])
    prep([_image((64, 64), 2)])
    np.testing.assert_array_equal(first, kept)
    prep([_image((64, 64), 3)])  # the fourth call reuses the first slot
    assert not np.array_equal(first, kept)
    again, _ = prep([_image((64, 64), 4)], slot=0)
    assert np.shares_memory(again, first)


def test_bad_images_and_too_many_are_refused():
    prep = Preprocessor((64, 64))
    with pytest.raises(UsageError, match=r"expected a BGR HWC uint8 image, got float32 \[8, 8, 3\]"):
        prep([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(UsageError, match="2 images, but the buffers hold 1"):
        prep([_image((8, 8)), _image((8, 8))])


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
