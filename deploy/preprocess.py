"""Images to network input: letterbox to the model's size, BGR to RGB, [0, 1], NCHW float32.

The letterbox matches ultralytics' validation transform (scale down or up to fit with INTER_AREA
or INTER_LINEAR, centred padding of grey 114) on a fixed square canvas, the shape an engine is
built for. ``yolo val`` instead pads each batch to its own rectangle (stride multiple plus half a
stride); the scale is the same, only the padding differs.

``Preprocessor`` does the same into buffers it keeps across frames: one resize straight into the
padded canvas, the borders filled only when the geometry changes, and for an end-to-end model
(``deploy/end_to_end.py``, uint8 NHWC BGR input) no float copy at all: the canvas is the input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from base.errors import UsageError

PAD_VALUE = 114
SCALE = np.float32(1 / 255)


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


def _geometry(h0: int, w0: int, shape: tuple[int, int], stride: int = 32, auto: bool = False) -> tuple:
    """Scale, resized size ``(w1, h1)`` and padding ``(top, bottom, left, right)`` of ultralytics' letterbox."""
    r = min(shape[0] / h0, shape[1] / w0)
    w1, h1 = int(round(w0 * r)), int(round(h0 * r))
    dw, dh = shape[1] - w1, shape[0] - h1
    if auto:
        dw, dh = dw % stride, dh % stride
    top, left = int(round(dh / 2 - 0.1)), int(round(dw / 2 - 0.1))
    return r, (w1, h1), (top, dh - top, left, dw - left)


def _interpolation(r: float) -> int:
    return cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR


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
    r, (w1, h1), (top, bottom, left, right) = _geometry(h0, w0, shape, stride, auto)
    if (w1, h1) != (w0, h0):
        img = cv2.resize(img, (w1, h1), interpolation=_interpolation(r))
    if top or bottom or left or right:
        img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return img, LetterboxMeta(r, (float(left), float(top)), (h0, w0))


def to_tensor(images: list[np.ndarray]) -> np.ndarray:
    """Stack equally sized BGR HWC uint8 images into an RGB NCHW float32 batch in [0, 1]."""
    batch = np.stack(images)[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32) * SCALE


class Preprocessor:
    """Letterbox BGR frames into input buffers kept across calls (the same numbers as ``preprocess``).

    Each image is resized once, straight into its place in the padded canvas; the grey borders are
    written only when the geometry changes (a video's frames all share one). The float path then
    writes RGB NCHW ``x / 255`` into the input buffer; the uint8 path (end-to-end models, which
    normalise inside the graph) hands the BGR NHWC canvas over as the input itself.

    Args:
        shape: Network input ``(height, width)``.
        batch: Most images per call.
        uint8_nhwc: Give ``[B, H, W, 3]`` uint8 BGR (``deploy/end_to_end.py`` models) instead of
            ``[B, 3, H, W]`` float32 RGB in [0, 1].
        slots: Input buffers, used in turn or as the caller picks (``slot=``): a returned batch stays
            untouched for ``slots - 1`` more calls in turn (the live pipeline keeps several in flight).
        allocate: Makes a buffer from ``(shape, dtype)``, e.g. ``Runner.host_buffer`` (pinned memory
            where a GPU runner offers it); default ``np.empty``.

    Example:
        >>> prep = Preprocessor((640, 640), slots=6)
        >>> batch, metas = prep([frame])  # valid until the 6th call from now; do not modify it
    """

    def __init__(
        self, shape: tuple[int, int], batch: int = 1, uint8_nhwc: bool = False, slots: int = 1,
        allocate: Callable[[tuple[int, ...], type], np.ndarray] | None = None,
    ) -> None:  # fmt: skip
        allocate = allocate or np.empty
        h, w = self.shape = (int(shape[0]), int(shape[1]))
        self.uint8_nhwc = uint8_nhwc
        if uint8_nhwc:
            self._inputs = [allocate((batch, h, w, 3), np.uint8) for _ in range(slots)]
            self._canvases = [list(inp) for inp in self._inputs]  # views: the canvas is the input
        else:
            self._inputs = [allocate((batch, 3, h, w), np.float32) for _ in range(slots)]
            canvases = [np.empty((h, w, 3), np.uint8) for _ in range(batch)]  # scratch, shared by every slot
            self._canvases = [canvases] * slots
        self._planes = [] if uint8_nhwc else [np.empty((h, w), np.uint8) for _ in range(3)]
        self._drawn: dict[int, tuple] = {}  # canvas id -> geometry its borders were written for
        self._slot = 0

    def __call__(
        self, images: list[np.ndarray], slot: int | None = None
    ) -> tuple[np.ndarray, list[LetterboxMeta]]:
        """Letterbox ``images`` (BGR HWC uint8) into ``slot`` (default: the next in turn); the batch of
        ``len(images)`` and the mappings."""
        if slot is None:
            slot, self._slot = self._slot, (self._slot + 1) % len(self._inputs)
        inputs, canvases = self._inputs[slot], self._canvases[slot]
        if len(images) > len(canvases):
            raise UsageError(f"preprocess: {len(images)} images, but the buffers hold {len(canvases)}")
        metas = []
        for i, img in enumerate(images):
            metas.append(self._letterbox_into(img, canvases[i]))
            if not self.uint8_nhwc:
                cv2.split(canvases[i], self._planes)  # contiguous planes: the multiply below runs twice as fast
                for c in range(3):  # BGR -> RGB; float32(u8) * float32(1/255), as to_tensor computes
                    np.multiply(self._planes[2 - c], SCALE, out=inputs[i, c], dtype=np.float32)
        return inputs[: len(images)], metas

    def _letterbox_into(self, img: np.ndarray, canvas: np.ndarray) -> LetterboxMeta:
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise UsageError(f"preprocess: expected a BGR HWC uint8 image, got {img.dtype} {list(img.shape)}")
        h0, w0 = img.shape[:2]
        r, (w1, h1), (top, bottom, left, right) = _geometry(h0, w0, self.shape)
        view = canvas[top : top + h1, left : left + w1]
        if (w1, h1) != (w0, h0):
            cv2.resize(img, (w1, h1), dst=view, interpolation=_interpolation(r))
        else:
            np.copyto(view, img)
        geometry = (top, left, h1, w1)
        if self._drawn.get(id(canvas)) != geometry:
            canvas[:top] = PAD_VALUE
            canvas[top + h1 :] = PAD_VALUE
            canvas[top : top + h1, :left] = PAD_VALUE
            canvas[top : top + h1, left + w1 :] = PAD_VALUE
            self._drawn[id(canvas)] = geometry
        return LetterboxMeta(r, (float(left), float(top)), (h0, w0))


def preprocess(images: list[np.ndarray], shape: tuple[int, int]) -> tuple[np.ndarray, list[LetterboxMeta]]:
    """Letterbox a list of BGR images to ``shape`` and return the batch and the per-image mappings.

    A fresh batch each call; ``Preprocessor`` reuses its buffers (the same numbers, bit for bit).

    Example:
        >>> batch, metas = preprocess([cv2.imread("street.jpg")], (640, 640))
        >>> batch.shape
        (1, 3, 640, 640)
    """
    return Preprocessor(shape, batch=len(images))(images)
