"""Images to network input: letterbox to the model's size, BGR to RGB, [0, 1], NCHW float32.

The letterbox matches ultralytics' validation transform (scale down or up to fit with INTER_AREA
or INTER_LINEAR, centred padding of grey 114) on a fixed square canvas, the shape an engine is
built for. ``yolo val`` instead pads each batch to its own rectangle (stride multiple plus half a
stride); the scale is the same, only the padding differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxMeta:
    """How one image was mapped into the network input, to map boxes back.

    Attributes:
        ratio: Scale from the original image to the network input.
        pad: Left and top padding in network pixels.
        shape: Original ``(height, width)``.
    """

    ratio: float
    pad: tuple[float, float]
    shape: tuple[int, int]


def letterbox(
    img: np.ndarray, shape: tuple[int, int], stride: int = 32, auto: bool = False
) -> tuple[np.ndarray, LetterboxMeta]:
    """Resize keeping the aspect ratio and pad to ``shape`` (or to a stride multiple with ``auto``).

    Args:
        img: HWC image.
        shape: Target ``(height, width)``.
        stride: Padding multiple when ``auto``.
        auto: Pad only to the nearest multiple of ``stride`` instead of the full ``shape``.

    Returns:
        The padded image and the mapping back to the original.
    """
    h0, w0 = img.shape[:2]
    r = min(shape[0] / h0, shape[1] / w0)
    w1, h1 = int(round(w0 * r)), int(round(h0 * r))
    if (w1, h1) != (w0, h0):
        img = cv2.resize(img, (w1, h1), interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
    dw, dh = shape[1] - w1, shape[0] - h1
    if auto:
        dw, dh = dw % stride, dh % stride
    top, left = int(round(dh / 2 - 0.1)), int(round(dw / 2 - 0.1))
    bottom, right = dh - top, dw - left
    if dw or dh:
        img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return img, LetterboxMeta(r, (float(left), float(top)), (h0, w0))


def to_tensor(images: list[np.ndarray]) -> np.ndarray:
    """Stack equally sized BGR HWC uint8 images into an RGB NCHW float32 batch in [0, 1]."""
    batch = np.stack(images)[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32) * np.float32(1 / 255)


def preprocess(images: list[np.ndarray], shape: tuple[int, int]) -> tuple[np.ndarray, list[LetterboxMeta]]:
    """Letterbox a list of BGR images to ``shape`` and return the batch and the per-image mappings.

    Example:
        >>> batch, metas = preprocess([cv2.imread("street.jpg")], (640, 640))
        >>> batch.shape
        (1, 3, 640, 640)
    """
    boxed = [letterbox(img, shape) for img in images]
    return to_tensor([b[0] for b in boxed]), [b[1] for b in boxed]
