"""Inference backends behind one ``Runner`` interface; each imports its library on first use."""

from __future__ import annotations

from pathlib import Path

from deploy.errors import ToolchainError
from deploy.runtime.base import Runner

BACKENDS = ("auto", "onnxruntime", "openvino", "tensorrt")
ENGINE_SUFFIXES = (".engine", ".plan")


def default_backend() -> str:
    """OpenVINO where it is installed (it runs QDQ ONNX in INT8 on CPUs), else ONNX Runtime."""
    import importlib.util

    return "openvino" if importlib.util.find_spec("openvino") is not None else "onnxruntime"


def create_runner(path: str | Path, backend: str = "onnxruntime", **options) -> Runner:
    """A runner for a model file.

    Args:
        path: ``.onnx`` model, or ``.engine``/``.plan`` (TensorRT).
        backend: ``onnxruntime`` (the reference for Q/DQ arithmetic), ``openvino`` (INT8 on CPUs) or
            ``auto`` (``default_backend()``).
        options: Backend options (``threads``; ``precision`` for OpenVINO; ``providers`` for ONNX Runtime).
    """
    path = Path(path)
    if path.suffix in ENGINE_SUFFIXES:
        if backend not in ("auto", "tensorrt"):
            raise ToolchainError(f"{path}: a TensorRT engine runs only with --backend tensorrt (or auto)")
        from deploy.runtime.tensorrt import TensorRTRunner

        return TensorRTRunner(path)
    if path.suffix != ".onnx":
        raise ToolchainError(f"{path}: unsupported model file; expected .onnx, .engine or .plan")
    if backend == "tensorrt":
        raise ToolchainError(f"{path}: build an engine first (python -m deploy.engine.build {path}) for TensorRT")
    if backend == "auto":
        backend = default_backend()
    if backend != "openvino":
        options.pop("precision", None)
    if backend == "onnxruntime":
        from deploy.runtime.onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, **options)
    if backend == "openvino":
        from deploy.runtime.openvino import OpenVINORunner

        return OpenVINORunner(path, **options)
    raise ToolchainError(f"unknown backend '{backend}'; expected one of {list(BACKENDS)}")


__all__ = ["BACKENDS", "Runner", "create_runner"]
