"""ONNX files and their sidecars, written for the jobs: an exported model to its file, and a model straight
to its file (the FP16 variant of a file is ``toolchain.jobs.fp16_onnx``'s). Every write is atomic.

Example:
    >>> export_onnx(model, "runs/export/best.onnx", ExportConfig(imgsz=384))  # + best.onnx.json
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
import torch

from base.fileio import atomic_path
from base.metadata import sidecar_path
from toolchain.export.fp16 import fp16_path
from toolchain.export.onnx import ExportConfig, ExportedOnnx, onnx_model_from_torch

logger = logging.getLogger(__name__)


def onnx_outputs(onnx_path: Path, fp16: bool) -> dict[str, Path | None]:
    """An ONNX, its sidecar and, with ``fp16``, its FP16 variant and that one's sidecar, by what names them."""
    half = fp16_path(onnx_path) if fp16 else None
    return {"--out": onnx_path, f"the sidecar of {onnx_path}": sidecar_path(onnx_path), "the FP16 ONNX": half,
            "the sidecar of the FP16 ONNX": sidecar_path(half) if half else None}  # fmt: skip


def write_onnx(exported: ExportedOnnx, path: str | Path) -> Path:
    """Write an exported model to ``path`` and its sidecar to ``<path>.json``; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save(exported.model, str(tmp))
    exported.metadata.save(path)
    logger.info("Wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path


def export_onnx(
    model: torch.nn.Module,
    path: str | Path,
    cfg: ExportConfig,
    precision: str = "fp32",
    source: str = "",
    quantization: dict | None = None,
    config: dict | None = None,
) -> Path:
    """Export a detection model (``toolchain.export.onnx.onnx_model_from_torch``), write it and its sidecar.

    Args:
        model: The detection model, float or fake-quant (not modified).
        path: The ONNX to write (its sidecar is ``<path>.json``).
        cfg: Export settings.
        precision: What the sidecar says (``fp32``, ``int8``).
        source: The checkpoint it came from.
        quantization: The quantization config (and placement) of a quantized model.
        config: The resolved config of the command that exported it (sidecar ``extra.config``).

    Returns:
        The written ONNX path.
    """
    path = Path(path)
    exported = onnx_model_from_torch(model, cfg, precision, source, quantization, config, label=str(path))
    return write_onnx(exported, path)
