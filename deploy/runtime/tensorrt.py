"""TensorRT backend: pinned host buffers, one CUDA stream, async copies; name-based tensors
(``execute_async_v3``) on TensorRT 8.6 and later, the bindings API (``execute_async_v2``) on 8.5.
CUDA through pycuda or cuda-python; with cuda-python an optional CUDA graph replays the inference.

Every public method runs with the device's primary context pushed (deploy/engine/cuda.py), so the
runner can be made on one thread, run on the pipeline's worker thread and closed on another. Every
TensorRT call that reports failure is checked, and a batch outside the engine's optimization profile
is refused before anything runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from base.errors import ToolchainError
from base.metadata import ModelMetadata, sidecar_path
from deploy.engine.config import check_engine_compatible
from deploy.engine.cuda import open_cuda
from deploy.engine.trt import TrtFeatures, checked, import_tensorrt
from deploy.runtime.base import Runner

logger = logging.getLogger(__name__)
AXES = ("batch", "channels", "height", "width")


class _Buffer:
    def __init__(self, gpu, name: str, shape: tuple[int, ...], dtype: np.dtype, is_input: bool) -> None:
        self.name, self.shape, self.is_input = name, shape, is_input
        self.host = gpu.pinned(int(np.prod(shape)), dtype)
        self.device = gpu.alloc(self.host.nbytes)


def profile_text(low: tuple[int, ...], high: tuple[int, ...]) -> str:
    """``(1,3,64,64), (8,3,64,64)`` -> ``"batch 1-8, channels 3, height 64, width 64"``."""
    axes = AXES if len(low) == len(AXES) else [f"axis {i}" for i in range(len(low))]
    return ", ".join(f"{a} {lo}" if lo == hi else f"{a} {lo}-{hi}" for a, lo, hi in zip(axes, low, high))


class TensorRTRunner(Runner):
    """Run a serialized TensorRT engine (``.engine``/``.plan``) on the GPU.

    Args:
        path: The engine; its sidecar JSON, when present, is checked against this TensorRT and GPU.
        cuda: ``pycuda`` or ``cuda-python``.
        cuda_graph: Capture the inference as a CUDA graph and replay it (cuda-python only).

    Raises:
        ToolchainError: Missing, corrupt or truncated engine; another TensorRT version or GPU;
            no TensorRT, CUDA library or GPU.
    """

    name = "tensorrt"

    def __init__(self, path: str | Path, cuda: str = "pycuda", cuda_graph: bool = False) -> None:
        path = Path(path)
        if not path.is_file():
            raise ToolchainError(f"{path}: engine not found; build one with 'make engine'")
        self.path, self.buffers, self.gpu = path, [], None
        trt = import_tensorrt()
        self.gpu = open_cuda(cuda)
        if cuda_graph and not self.gpu.graphs:
            self.close()
            raise ToolchainError(f"CUDA graphs need cuda-python (--cuda cuda-python); {cuda} has no graph API here")
        self.use_graph, self._graph_batch = cuda_graph, None
        self._pinned_inputs: list[tuple[int, int]] = []  # (address, bytes) of host_buffer()'s arrays
        try:
            with self.gpu.activate():
                self._load(trt, path)
        except BaseException:
            self.close()
            raise

    def _load(self, trt, path: Path) -> None:
        self.trt, self.features = trt, TrtFeatures.of(trt)
        self._check_sidecar(path, trt.__version__)
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = checked(
            self.runtime.deserialize_cuda_engine(path.read_bytes()),
            f"{path}: TensorRT {trt.__version__} cannot load this engine: the file is corrupt or truncated, or it was "
            "built with another TensorRT version or for another GPU; rebuild it on this device",
        )
        self.context = checked(self.engine.create_execution_context(), f"{path}: cannot create an execution context")
        self.bindings_api = self.features.bindings_api
        self.profiles: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}  # input -> (min, max) shape
        self._buffers_trt8() if self.bindings_api else self._buffers()

    def _check_sidecar(self, path: Path, version: str) -> None:
        if not sidecar_path(path).is_file():
            logger.warning("%s: no sidecar; TensorRT version and GPU cannot be checked before loading", path)
            return
        check_engine_compatible(path, ModelMetadata.load(path).extra, version, self.gpu.capability())

    def _buffers(self) -> None:
        """Name-based I/O: inputs at the profile's largest shape first, then outputs at the shapes that gives."""
        engine, trt = self.engine, self.trt
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        shapes = {}
        for name in inputs:
            low, _, high = (tuple(s) for s in engine.get_tensor_profile_shape(name, 0))
            checked(self.context.set_input_shape(name, high), f"{self.path}: TensorRT refused {name} shape {high}")
            shapes[name] = high
            self.profiles[name] = (low, high)
        for name in inputs + [n for n in names if n not in inputs]:
            shape = shapes.get(name) or tuple(self.context.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            self.buffers.append(_Buffer(self.gpu, name, shape, dtype, name in inputs))  # close() frees what exists
            address = self.buffers[-1].device.ptr
            checked(self.context.set_tensor_address(name, address), f"{self.path}: TensorRT refused {name}'s address")

    def _buffers_trt8(self) -> None:
        """The bindings API of TensorRT 8.5: binding indices, one optimization profile."""
        engine, trt = self.engine, self.trt
        count = engine.num_bindings
        inputs = [i for i in range(count) if engine.binding_is_input(i)]
        shapes = {}
        for i in inputs:
            low, _, high = (tuple(s) for s in engine.get_profile_shape(0, i))
            checked(self.context.set_binding_shape(i, high), f"{self.path}: TensorRT refused binding {i} shape {high}")
            shapes[i] = high
            self.profiles[engine.get_binding_name(i)] = (low, high)
        for i in range(count):
            shape = shapes.get(i) or tuple(self.context.get_binding_shape(i))
            dtype = np.dtype(trt.nptype(engine.get_binding_dtype(i)))
            self.buffers.append(_Buffer(self.gpu, engine.get_binding_name(i), shape, dtype, i in inputs))

    @property
    def input_shape(self) -> tuple[int | None, int, int, int]:
        first = next(b for b in self.buffers if b.is_input)
        return first.shape  # type: ignore[return-value]

    @property
    def output_names(self) -> list[str]:
        return [b.name for b in self.buffers if not b.is_input]

    def host_buffer(self, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """Page-locked memory of this runner's context, valid until ``close()``: a batch the caller letterboxed
        into one goes to the GPU from where it is, with no host copy (except under a CUDA graph, which
        replays the copy from the runner's own buffer)."""
        with self.gpu.activate():
            array = self.gpu.pinned(int(np.prod(shape)), np.dtype(dtype)).reshape(shape)
        self._pinned_inputs.append((array.ctypes.data, array.nbytes))
        return array

    def _in_pinned_input(self, batch: np.ndarray, buffer: _Buffer) -> bool:
        if batch.dtype != buffer.host.dtype or not batch.flags.c_contiguous:
            return False
        start = batch.ctypes.data
        return any(a <= start and start + batch.nbytes <= a + n for a, n in self._pinned_inputs)

    def _check_batch(self, batch: np.ndarray) -> None:
        low, high = self.profiles[next(b.name for b in self.buffers if b.is_input)]
        if batch.ndim != len(low) or any(not lo <= d <= hi for d, lo, hi in zip(batch.shape, low, high)):
            raise ToolchainError(
                f"{self.path}: input of shape {tuple(batch.shape)} is outside the engine's profile "
                f"({profile_text(low, high)}); rebuild the engine for it ('make engine MAX_BATCH=...')"
            )

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        self._check_batch(batch)
        with self.gpu.activate():
            return self._infer(batch)

    def _infer(self, batch: np.ndarray) -> list[np.ndarray]:
        inp = next(b for b in self.buffers if b.is_input)
        n = batch.shape[0]
        shape = (n, *inp.shape[1:])
        if self.bindings_api:
            checked(self.context.set_binding_shape(0, shape), f"{self.path}: TensorRT refused input shape {shape}")
        else:
            checked(self.context.set_input_shape(inp.name, shape), f"{self.path}: TensorRT refused input shape {shape}")
        if self.use_graph and not self.bindings_api:
            np.copyto(inp.host[: batch.size], batch.ravel())
            self._replay(n)
        elif self._in_pinned_input(batch, inp):
            self._enqueue(batch)
        else:
            np.copyto(inp.host[: batch.size], batch.ravel())
            self._enqueue()
        self.gpu.synchronize()
        outputs = []
        for b in self.buffers:
            if not b.is_input:
                per_item = int(np.prod(b.shape[1:]))
                outputs.append(b.host[: n * per_item].reshape(n, *b.shape[1:]).copy())
        return outputs

    def _enqueue(self, source: np.ndarray | None = None) -> None:
        """Copies in (from ``source``, pinned, else the input's own buffer), inference, copies out: all queued
        on the one stream."""
        for b in self.buffers:
            if b.is_input:
                self.gpu.to_device(b.device.ptr, b.host if source is None else source)
        if self.bindings_api:
            ok = self.context.execute_async_v2([b.device.ptr for b in self.buffers], self.gpu.stream)
        else:
            ok = self.context.execute_async_v3(self.gpu.stream)
        checked(ok, f"{self.path}: TensorRT could not enqueue the inference; see its log above")
        for b in self.buffers:
            if not b.is_input:
                self.gpu.to_host(b.host, b.device.ptr)

    def _replay(self, batch: int) -> None:
        """Launch the CUDA graph of this batch size, capturing it first (after one plain run)."""
        if self._graph_batch != batch:
            self._enqueue()
            self.gpu.synchronize()
            self.gpu.capture(self._enqueue)
            self._graph_batch = batch
        self.gpu.launch()

    def close(self) -> None:
        if self.gpu is None:
            return
        with self.gpu.activate():  # TensorRT objects and buffers are freed in the context they live in
            for b in self.buffers:
                b.device.free()
            self.buffers, self._pinned_inputs = [], []
            self.context = self.engine = self.runtime = None
        self.gpu.close()
        self.gpu = None
