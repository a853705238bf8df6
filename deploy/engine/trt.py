"""Lazy imports of TensorRT and pycuda, and the version guards the engine code branches on.

Code that uses an API of only some versions lives in functions named ``*_trt8`` (TensorRT 8.x
only) or ``*_trt10`` (10.x only); tests/deploy/engine/test_api_names.py checks every TensorRT and
pycuda name against the documented API of each version and that rule.
"""

from __future__ import annotations

from deploy.errors import ToolchainError

CPU_ALTERNATIVE = "on a machine without an NVIDIA GPU, run the ONNX with --backend openvino or onnxruntime"


def import_tensorrt():
    """The ``tensorrt`` module, or a ToolchainError that says where to get it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ToolchainError(
            "TensorRT is not installed: use NVIDIA's TensorRT container (nvcr.io/nvidia/tensorrt, see docker/) on "
            f"x86_64 or JetPack on a Jetson; {CPU_ALTERNATIVE}"
        ) from exc
    return trt


def import_pycuda():
    """``pycuda.driver`` with a CUDA context made current (``pycuda.autoinit``)."""
    try:
        import pycuda.autoinit  # noqa: F401  (creates and pushes the context)
        import pycuda.driver as cuda
    except ImportError as exc:
        raise ToolchainError(
            f"pycuda is not installed: pip install pycuda (needs the CUDA toolkit); {CPU_ALTERNATIVE}"
        ) from exc
    except Exception as exc:  # pycuda raises its own errors when no GPU or driver is present
        raise ToolchainError(f"no usable CUDA device ({exc}); {CPU_ALTERNATIVE}") from exc
    return cuda


def parse_version(version: str) -> tuple[int, int]:
    """``"8.5.2.2"`` -> ``(8, 5)``."""
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError as exc:
        raise ToolchainError(f"cannot parse the TensorRT version '{version}'") from exc


def uses_bindings_api(version: tuple[int, int]) -> bool:
    """TensorRT 8.5 runs through the bindings API (execute_async_v2); 8.6 and later by tensor name (v3)."""
    return version < (8, 6)


def is_trt10(version: tuple[int, int]) -> bool:
    """TensorRT 10 and later: no bindings API, no EXPLICIT_BATCH flag, strongly typed networks available."""
    return version >= (10, 0)
