"""Lazy imports of TensorRT, Polygraphy, pycuda and cuda-python; what the installed TensorRT can do; checked calls.

Versions differ in what exists, not only in what is deprecated: TensorRT 10 dropped the bindings API
and made EXPLICIT_BATCH implicit; TensorRT 11 dropped the INT8/FP16 builder flags and the calibrators
(every network is strongly typed). ``TrtFeatures`` reads that from the module itself, and the code
branches on it. tests/deploy/engine/test_real_api.py runs every path against NVIDIA's real API of
8.6, 10.0, 10.3, 10.8, 10.13 and 11.4.
"""

from __future__ import annotations

import contextlib
import logging
import types
from collections.abc import Iterator
from dataclasses import dataclass

from base.errors import ToolchainError

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


def import_polygraphy() -> types.SimpleNamespace:
    """Polygraphy's TensorRT loaders (NVIDIA's own tested layer), its logger on Python's ``logging``.

    Polygraphy imports TensorRT lazily itself; its log goes through the ``Polygraphy`` logger (stderr under
    our CLIs), so stdout keeps only what our commands print.

    Raises:
        ToolchainError: Polygraphy is not installed.
    """
    try:
        from polygraphy.backend import trt as loaders
        from polygraphy.logger import G_LOGGER
    except ImportError as exc:
        raise ToolchainError(
            "Polygraphy is not installed: pip install 'polygraphy>=0.49' (NVIDIA's TensorRT container has it; the "
            f"images of docker/ install it); {CPU_ALTERNATIVE}"
        ) from exc
    if not G_LOGGER.use_python_logging_system:
        G_LOGGER.use_python_logging_system = True
        for level, name in ((G_LOGGER.START, "START"), (G_LOGGER.FINISH, "FINISH")):  # between INFO and WARNING
            logging.addLevelName(level, name)
        G_LOGGER.module_severity = G_LOGGER.WARNING if logging.getLogger().level > logging.INFO else G_LOGGER.INFO
    return types.SimpleNamespace(
        NetworkFromOnnxPath=loaders.NetworkFromOnnxPath, CreateConfig=loaders.CreateConfig, Profile=loaders.Profile,
        EngineBytesFromNetwork=loaders.EngineBytesFromNetwork, EngineFromBytes=loaders.EngineFromBytes,
    )  # fmt: skip


@contextlib.contextmanager
def polygraphy_errors(context: str) -> Iterator[None]:
    """A Polygraphy failure (``G_LOGGER.critical``: the details are in its log) as a one-line ToolchainError."""
    from polygraphy.exception import PolygraphyException

    try:
        yield
    except PolygraphyException as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ToolchainError(f"{context}: {lines[0] if lines else type(exc).__name__}") from exc


def import_pycuda():
    """``pycuda.driver``; no context is made here (deploy/engine/cuda.py owns contexts)."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise ToolchainError(
            f"pycuda is not installed: pip install pycuda (needs the CUDA toolkit's nvcc on PATH); {CPU_ALTERNATIVE}"
        ) from exc
    return cuda


def import_cuda_python():
    """``(runtime, driver)`` modules of cuda-python: ``cuda.bindings`` (11.8.7+, 12.6+), else ``cuda`` (older)."""
    try:
        from cuda.bindings import driver, runtime
    except ImportError:
        try:
            from cuda import cuda as driver
            from cuda import cudart as runtime
        except ImportError as exc:
            raise ToolchainError(
                "cuda-python is not installed: pip install 'cuda-python>=12,<13' (the CUDA 12 of JetPack 6 and "
                f"NGC 24.x); {CPU_ALTERNATIVE}"
            ) from exc
    return runtime, driver


def parse_version(version: str) -> tuple[int, int]:
    """``"8.5.2.2"`` -> ``(8, 5)``."""
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError as exc:
        raise ToolchainError(f"cannot parse the TensorRT version '{version}'") from exc


@dataclass(frozen=True)
class TrtFeatures:
    """What this TensorRT offers, read from the module.

    Attributes:
        version: ``trt.__version__``.
        explicit_batch_flag: Networks must be created with EXPLICIT_BATCH (8.x; implicit from 10).
        strongly_typed: ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` exists (9+).
        precision_flags: ``BuilderFlag.INT8``/``FP16`` exist (up to 10.x; 11 is strongly typed only).
        calibrators: ``IInt8EntropyCalibrator2`` exists (up to 10.x).
        bindings_api: Run through the bindings API (``execute_async_v2``): 8.5 and older.
    """

    version: str
    explicit_batch_flag: bool
    strongly_typed: bool
    precision_flags: bool
    calibrators: bool
    bindings_api: bool

    @classmethod
    def of(cls, trt) -> TrtFeatures:
        version = parse_version(trt.__version__)
        return cls(
            version=trt.__version__,
            explicit_batch_flag=version < (10, 0),
            strongly_typed=hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"),
            precision_flags=hasattr(trt.BuilderFlag, "INT8") and hasattr(trt.BuilderFlag, "FP16"),
            calibrators=hasattr(trt, "IInt8EntropyCalibrator2"),
            bindings_api=version < (8, 6),
        )

    @property
    def strongly_typed_only(self) -> bool:
        """Precision comes only from the network's types (TensorRT 11)."""
        return self.strongly_typed and not self.precision_flags


def checked(result, message: str):
    """``result`` of a TensorRT call that reports failure as ``None``/``False``/``-1``; else ToolchainError."""
    if result is None or result is False or (isinstance(result, int) and not isinstance(result, bool) and result < 0):
        raise ToolchainError(message)
    return result
