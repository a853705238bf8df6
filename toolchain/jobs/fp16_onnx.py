"""The FP16 variant of an ONNX file, written beside it with its sidecar (the conversion is
``toolchain.export.fp16``'s). Torch-free: GPU benchmark hosts convert without PyTorch.

Example:
    >>> fp16_onnx_from_onnx("runs/export/best.onnx")  # -> runs/export/best.fp16.onnx (+ .json sidecar)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import onnx

from base.errors import ToolchainError
from base.fileio import atomic_path
from base.metadata import ModelMetadata
from toolchain.export.fp16 import Fp16Config, fp16_model_from_onnx, fp16_path

logger = logging.getLogger(__name__)


def fp16_onnx_from_onnx(src: str | Path, dst: str | Path | None = None, cfg: Fp16Config | None = None) -> Path:
    """Write the float16 variant of an ONNX file and its sidecar (``fp16_model_from_onnx``); returns its
    path (default ``fp16_path(src)``).

    Raises:
        ToolchainError: The source is missing, not an ONNX, or already holds float16 tensors.
    """
    src = Path(src)
    dst = Path(dst) if dst else fp16_path(src)
    if not src.is_file():
        raise ToolchainError(f"{src}: ONNX not found; export the FP32 model first ('toolchain export' or 'ptq --fp32')")
    try:
        model = onnx.load(str(src))
    except Exception as exc:  # protobuf's DecodeError for a file that is not an ONNX
        raise ToolchainError(f"{src}: not a readable ONNX model ({exc})") from exc
    start = time.perf_counter()
    converted, meta = fp16_model_from_onnx(model, ModelMetadata.find(src), src, cfg)
    with atomic_path(dst) as tmp:
        onnx.save(converted, str(tmp))
        onnx.checker.check_model(str(tmp))
    if meta is not None:
        meta.save(dst)
    logger.info("Finished float16 conversion in %.1f s: %s", time.perf_counter() - start, dst)
    return dst
