"""What builds and runs the engines of ``deploy.bench``: TensorRT where it is, else ONNX Runtime standing in.

With TensorRT, each row's ONNX becomes an engine (``deploy.engine.build.engine_from_onnx``) run by
``TensorRTRunner``. Without it, each row's ONNX runs as it is on ONNX Runtime's CPU provider, and every
report line says so: the numbers are then the ONNX's on this CPU, not an engine's.

Example:
    >>> backend = engine_backend("auto")     # TensorRT here, or the stand-in with the reason
    >>> backend.standin                      # None with TensorRT; else why TensorRT is not used
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from base.errors import ToolchainError
from base.metadata import ModelMetadata
from deploy.engine.build import engine_from_onnx
from deploy.engine.config import EngineConfig, file_sha256
from deploy.engine.trt import import_tensorrt
from deploy.runtime.base import Runner
from deploy.runtime.onnxruntime import OnnxRuntimeRunner
from deploy.runtime.tensorrt import TensorRTRunner

BACKENDS = ("auto", "tensorrt", "onnxruntime")


def missing_requirement() -> str | None:
    """The one line that says what is missing for TensorRT engines and how to get it, or None."""
    if importlib.util.find_spec("tensorrt") is None:
        return ("TensorRT is not installed (import tensorrt): run it in the GPU image (make docker-gpu) or on a Jetson "
                "(make docker-jetson, or JetPack's python3-libnvinfer); see docs/tensorrt.md")  # fmt: skip
    if importlib.util.find_spec("pycuda") is None and importlib.util.find_spec("cuda") is None:
        return "no CUDA library for Python: pip install pycuda (needs nvcc on PATH) or 'cuda-python>=12,<13'"
    return None


@dataclass
class EngineBackend:
    """How a row's ONNX becomes something to run, and how it is opened.

    Attributes:
        name: ``tensorrt``, or ``onnxruntime`` standing in.
        build: ``(onnx, EngineConfig, out) -> path`` of what ``open`` runs.
        open: A runner of that path.
        standin: ``None`` for TensorRT; else why ONNX Runtime stands in (said in the report).
        cuda: CUDA library of the TensorRT runner (memory probe).
    """

    name: str
    build: Callable[[Path, EngineConfig, Path], Path]
    open: Callable[[Path], Runner]
    standin: str | None = None
    cuda: str = "pycuda"
    engine_suffix: str = ".engine"
    reusable: Callable[[Path, Path, EngineConfig], bool] = lambda engine, onnx, cfg: False
    memory: Callable[[Path, str], dict] | None = None  # (model, label) -> peak memory; None: a fresh child

    @property
    def label(self) -> str:
        """What the report calls it."""
        return "TensorRT" if self.standin is None else "ONNX Runtime (CPU) standing in for TensorRT"


def reusable(engine: Path, onnx: Path, cfg: EngineConfig) -> bool:
    """An engine built before from this very ONNX (sidecar ``onnx_sha256``), at this precision and max batch,
    by this TensorRT: rebuilding it would give the same engine."""
    meta = ModelMetadata.find(engine) if engine.is_file() else None
    if meta is None or meta.extra.get("onnx_sha256") != file_sha256(onnx) or meta.precision != cfg.precision:
        return False
    built = meta.extra.get("engine") or {}
    if built.get("max_batch") != cfg.max_batch:
        return False
    return meta.extra.get("tensorrt") == import_tensorrt().__version__


def build_or_reuse(onnx: Path, cfg: EngineConfig, out: Path) -> Path:
    """``engine_from_onnx``, unless ``out`` is already the engine of this ONNX (``reusable``)."""
    if reusable(out, onnx, cfg):
        return out
    return engine_from_onnx(onnx, cfg, out)


def tensorrt_backend(cuda: str = "pycuda") -> EngineBackend:
    """Engines built by ``deploy.engine.build`` and run by ``TensorRTRunner``."""
    return EngineBackend("tensorrt", build_or_reuse, lambda p: TensorRTRunner(p, cuda), None, cuda, reusable=reusable)


def onnxruntime_standin(reason: str) -> EngineBackend:
    """Each row's ONNX itself, on ONNX Runtime's CPU provider (``reason``: why not TensorRT)."""
    return EngineBackend("onnxruntime", lambda onnx, cfg, out: Path(onnx), lambda p: OnnxRuntimeRunner(p), reason,
                         engine_suffix=".onnx")  # fmt: skip


def engine_backend(name: str = "auto", cuda: str = "pycuda") -> EngineBackend:
    """``auto``: TensorRT where it and a CUDA library are installed, else the ONNX Runtime stand-in.

    Raises:
        ToolchainError: An unknown name, or ``tensorrt`` asked for where it is missing.
    """
    if name not in BACKENDS:
        raise ToolchainError(f"--backend {name}: expected one of {', '.join(BACKENDS)}")
    missing = missing_requirement()
    if name == "tensorrt" and missing:
        raise ToolchainError(f"--backend tensorrt: {missing}; or --backend onnxruntime to run the ONNX on the CPU")
    if name == "onnxruntime":
        return onnxruntime_standin("--backend onnxruntime was asked for")
    if missing:
        return onnxruntime_standin(missing)
    return tensorrt_backend(cuda)
