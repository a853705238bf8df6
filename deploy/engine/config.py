"""What an engine build needs, checked before TensorRT is imported: precision, profile, paths.

Everything here is plain Python so it is tested on machines without TensorRT or a GPU.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from base.errors import ToolchainError

PRECISIONS = ("fp32", "fp16", "int8")
CUDA_LIBRARIES = ("pycuda", "cuda-python")


@dataclass(frozen=True)
class EngineConfig:
    """An engine build.

    Attributes:
        precision: ``fp32``, ``fp16`` or ``int8`` (the product: the default). INT8 comes from the Q/DQ nodes
            of a QDQ ONNX (explicit quantization) or, for a plain ONNX on TensorRT 8.x/10.x, from an
            entropy calibrator over ``calib_images``; FP16 on TensorRT 11 from an ONNX with FP16 types.
        min_batch, opt_batch, max_batch: The optimization profile of a dynamic-batch ONNX.
        workspace_gib: Builder workspace limit.
        fp16_fallback: With INT8 on a weakly typed network (8.x, calibration), let the float tail run in FP16.
        strongly_typed: Build strongly typed also for FP32/FP16 on TensorRT 10 (INT8 from Q/DQ is strongly
            typed on 10+ anyway, and TensorRT 11 builds nothing else): precisions come from the ONNX.
        timing_cache: File to read and update the builder's timing cache (``None``: off).
        dla_core: Jetson DLA core to build for (GPU fallback on), ``None`` for the GPU.
        calib_images: Folder of images for INT8 calibration of an ONNX without Q/DQ.
        calib_batches: Calibration batches to feed.
        calib_cache: Calibration cache file (reused when present).
        allow_invalid_qdq: Build from a QDQ ONNX that breaks TensorRT's Q/DQ arithmetic rules (scales
            finite and positive, zero points 0); refused by default.
        cuda: CUDA library for the build's context, calibration buffers and device query:
            ``pycuda`` or ``cuda-python``.
    """

    precision: str = "int8"
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 1
    workspace_gib: float = 2.0
    fp16_fallback: bool = True
    strongly_typed: bool = False
    timing_cache: str | None = None
    dla_core: int | None = None
    calib_images: str | None = None
    calib_batches: int = 32
    calib_cache: str | None = None
    cuda: str = "pycuda"
    allow_invalid_qdq: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ToolchainError(f"engine: precision must be one of {list(PRECISIONS)}, got '{self.precision}'")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ToolchainError(
                f"engine: expected 1 <= min_batch <= opt_batch <= max_batch, got "
                f"{self.min_batch}, {self.opt_batch}, {self.max_batch}"
            )
        if self.workspace_gib <= 0:
            raise ToolchainError(f"engine: workspace_gib must be positive, got {self.workspace_gib}")
        if self.cuda not in CUDA_LIBRARIES:
            raise ToolchainError(f"engine: cuda must be one of {list(CUDA_LIBRARIES)}, got '{self.cuda}'")


def engine_path(onnx: str | Path, precision: str, out_dir: str | Path | None = None) -> Path:
    """``model.int8.onnx`` -> ``model.int8.engine``; ``model.onnx`` -> ``model.<precision>.engine``."""
    onnx = Path(onnx)
    stem = onnx.name[: -len(".onnx")] if onnx.name.endswith(".onnx") else onnx.stem
    for p in PRECISIONS:
        if stem.endswith(f".{p}"):
            stem = stem[: -len(p) - 1]
    return Path(out_dir or onnx.parent) / f"{stem}.{precision}.engine"


def profile_shapes(
    input_shape: tuple, cfg: EngineConfig
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
    """(min, opt, max) shapes for a dynamic batch dimension, ``None`` when the ONNX batch is static.

    Raises:
        ToolchainError: A dimension other than the batch is dynamic, or a static batch disagrees
            with the requested profile.
    """
    batch, *rest = input_shape
    if any(not isinstance(d, int) or d <= 0 for d in rest):
        raise ToolchainError(f"engine: only the batch dimension may be dynamic; the input is {list(input_shape)}")
    if isinstance(batch, int) and batch > 0:
        if {cfg.min_batch, cfg.opt_batch, cfg.max_batch} not in ({1}, {batch}):
            raise ToolchainError(
                f"engine: the ONNX has a static batch of {batch}; export it with --dynamic-batch for a profile "
                f"up to {cfg.max_batch}"
            )
        return None
    return (cfg.min_batch, *rest), (cfg.opt_batch, *rest), (cfg.max_batch, *rest)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (the ONNX an engine was built from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_qdq(onnx: str | Path) -> bool:
    """Whether an ONNX has QuantizeLinear/DequantizeLinear nodes (explicit quantization)."""
    import onnx as onnx_lib

    model = onnx_lib.load(str(onnx), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def check_int8_source(onnx: str | Path, cfg: EngineConfig) -> str:
    """How INT8 will be obtained: ``qdq`` or ``calibration``; refuses INT8 with neither.

    Raises:
        ToolchainError: INT8 on an ONNX without Q/DQ and without calibration images.
    """
    if cfg.precision != "int8":
        return "none"
    if is_qdq(onnx):
        return "qdq"
    if cfg.calib_images and Path(cfg.calib_images).is_dir():
        return "calibration"
    raise ToolchainError(
        f"{onnx}: INT8 needs either Q/DQ nodes (export with 'make ptq' or 'make qat') or calibration images "
        "(--calib-images FOLDER); this ONNX has no Q/DQ and no calibration folder was given"
    )


def check_engine_compatible(engine: str | Path, built: dict, trt_version: str, capability: str) -> None:
    """Refuse an engine built for another TensorRT version or GPU, from its sidecar's ``extra``.

    Raises:
        ToolchainError: Naming what the engine was built with, what this machine has, and the fix.
    """
    fix = f"rebuild it here: python -m deploy.engine.build MODEL.onnx --precision {built.get('precision', 'int8')}"
    if built.get("tensorrt") and built["tensorrt"] != trt_version:
        raise ToolchainError(
            f"{engine}: built with TensorRT {built['tensorrt']}, this machine has {trt_version}; {fix}"
        )
    if built.get("compute_capability") and built["compute_capability"] != capability:
        raise ToolchainError(
            f"{engine}: built for a GPU of compute capability {built['compute_capability']} ({built.get('gpu', '?')}), "
            f"this GPU is {capability}; {fix}"
        )
