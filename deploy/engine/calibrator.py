"""INT8 calibration for an ONNX without Q/DQ: image batches, and TensorRT's entropy calibrator over them.

``ImageBatcher`` is plain numpy (tested anywhere); ``entropy_calibrator`` builds the TensorRT class
lazily, on versions that still have calibrators (8.x, 10.x), with its buffers in the build's CUDA context.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from base.dataset import IMAGE_SUFFIXES
from base.errors import ToolchainError
from base.fileio import atomic_path
from deploy.preprocess import preprocess

logger = logging.getLogger(__name__)


class ImageBatcher:
    """Full NCHW float32 batches of letterboxed images from a folder (the same preprocessing as inference).

    Args:
        folder: Images to calibrate on (searched recursively).
        shape: ``(batch, 3, height, width)``.
        max_batches: Most batches to produce.

    A last partial batch is completed by repeating its images, so every batch has the engine's
    batch size; undecodable images are skipped.
    """

    def __init__(self, folder: str | Path, shape: tuple[int, int, int, int], max_batches: int) -> None:
        folder = Path(folder)
        self.paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise ToolchainError(f"{folder}: no calibration images; expected {sorted(IMAGE_SUFFIXES)} files")
        self.shape = shape
        self.batches = min(max_batches, -(-len(self.paths) // shape[0]))

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[np.ndarray]:
        size, (h, w) = self.shape[0], self.shape[2:]
        for b in range(self.batches):
            images = [cv2.imread(str(p)) for p in self.paths[b * size : (b + 1) * size]]
            images = [im for im in images if im is not None]
            if not images:
                continue
            images += [images[i % len(images)] for i in range(size - len(images))]
            yield preprocess(images, (h, w))[0]


def entropy_calibrator(trt, batcher: ImageBatcher, cache: str | Path | None, gpu):
    """A ``trt.IInt8EntropyCalibrator2`` feeding ``batcher`` through one device buffer of ``gpu``.

    Args:
        trt: The tensorrt module (a version with calibrators: 8.x, 10.x; see deploy.engine.precision).
        batcher: The calibration batches.
        cache: Calibration cache file, read when present and written after calibration.
        gpu: The CUDA helper (deploy.engine.cuda) whose context is current while TensorRT calibrates.

    Call ``close()`` on the calibrator after the build to free its buffers.
    """

    class _EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.batches = iter(batcher)
            self.host = gpu.pinned(int(np.prod(batcher.shape)), np.float32)
            self.device = gpu.alloc(self.host.nbytes)
            self.cache = Path(cache) if cache else None
            self.done = 0

        def get_batch_size(self) -> int:
            return batcher.shape[0]

        def get_batch(self, names):  # noqa: ARG002  (TensorRT passes the input names)
            batch = next(self.batches, None)
            if batch is None:
                return None
            np.copyto(self.host, batch.ravel())
            gpu.to_device(self.device.ptr, self.host)
            gpu.synchronize()
            self.done += 1
            logger.info("calibration batch %d/%d", self.done, len(batcher))
            return [self.device.ptr]

        def read_calibration_cache(self):
            if self.cache and self.cache.is_file():
                logger.info("Using calibration cache %s", self.cache)
                return self.cache.read_bytes()
            return None

        def write_calibration_cache(self, data) -> None:
            if self.cache:
                with atomic_path(self.cache) as tmp:
                    tmp.write_bytes(bytes(data))

        def close(self) -> None:
            self.device.free()

    return _EntropyCalibrator()
