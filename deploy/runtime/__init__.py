"""Inference backends behind one ``Runner`` interface; each imports its library on first use."""

from __future__ import annotations

from pathlib import Path

from base.errors import ToolchainError
from deploy.runtime.base import Runner
from deploy.runtime.onnxruntime import OnnxRuntimeRunner
from deploy.runtime.openvino import OpenVINORunner
from deploy.runtime.tensorrt import TensorRTRunner

BACKENDS = ("auto", "onnxruntime", "onnxruntime-cuda", "onnxruntime-trt", "openvino", "tensorrt")
ORT_PROVIDERS = {
    "onnxruntime": ["CPUExecutionProvider"],
    "onnxruntime-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "onnxruntime-trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
ENGINE_SUFFIXES = (".engine", ".plan")
OPENVINO_ONLY = ("precision", "int8_remedy")
"""Options only the OpenVINO runner takes; dropped for the other backends."""
BACKEND_HELP = {
    "auto": "TensorRT for an .engine/.plan; for an .onnx: onnxruntime-cuda where ONNX Runtime sees an NVIDIA GPU, "
    "else openvino where installed, else onnxruntime",
    "onnxruntime": "ONNX Runtime on the CPU",
    "onnxruntime-cuda": "ONNX Runtime's CUDA provider (needs onnxruntime-gpu and a GPU)",
    "onnxruntime-trt": "ONNX Runtime's TensorRT provider, with CUDA then CPU for what it cannot run "
    "(needs onnxruntime-gpu and TensorRT)",
    "openvino": "OpenVINO on the CPU (runs QDQ ONNX in INT8)",
    "tensorrt": "a TensorRT .engine/.plan (build one with 'make engine'; needs TensorRT and a GPU)",
}


def default_backend() -> str:
    """For an ONNX: ONNX Runtime's CUDA provider on a machine with an NVIDIA GPU, else OpenVINO (it runs
    QDQ ONNX in INT8 on CPUs) where installed, else ONNX Runtime on the CPU."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            return "onnxruntime-cuda"
    return "openvino" if importlib.util.find_spec("openvino") is not None else "onnxruntime"


def create_runner(path: str | Path, backend: str = "onnxruntime", **options) -> Runner:
    """A runner for a model file.

    Args:
        path: ``.onnx`` model, or ``.engine``/``.plan`` (TensorRT).
        backend: ``onnxruntime`` (CPU; the reference for Q/DQ arithmetic), ``onnxruntime-cuda`` and
            ``onnxruntime-trt`` (ONNX Runtime's CUDA and TensorRT providers), ``openvino`` (INT8 on CPUs),
            ``tensorrt`` (engines) or ``auto`` (``default_backend()``, or TensorRT for an engine).
        options: Backend options (``threads``; ``precision`` and ``int8_remedy`` for OpenVINO; ``cuda`` and
            ``cuda_graph`` for TensorRT engines).
    """
    path = Path(path)
    if path.suffix in ENGINE_SUFFIXES:
        if backend not in ("auto", "tensorrt"):
            raise ToolchainError(f"{path}: a TensorRT engine runs only with --backend tensorrt (or auto)")
        return TensorRTRunner(path, options.get("cuda") or "pycuda", bool(options.get("cuda_graph")))  # built checked
    options.pop("cuda", None)
    options.pop("cuda_graph", None)
    if path.suffix != ".onnx":
        raise ToolchainError(f"{path}: unsupported model file; expected .onnx, .engine or .plan")
    if backend == "tensorrt":
        raise ToolchainError(f"{path}: build an engine first (python -m deploy.engine.build {path}) for TensorRT")
    if backend == "auto":
        backend = default_backend()
    if backend != "openvino":
        for key in OPENVINO_ONLY:
            options.pop(key, None)
    if backend in ORT_PROVIDERS:
        return OnnxRuntimeRunner(path, providers=ORT_PROVIDERS[backend], **options)
    if backend == "openvino":
        return OpenVINORunner(path, **options)
    raise ToolchainError(f"unknown backend '{backend}'; expected one of {list(BACKENDS)}")


__all__ = ["BACKENDS", "BACKEND_HELP", "Runner", "create_runner", "default_backend"]
