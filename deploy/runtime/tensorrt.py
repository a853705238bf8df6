"""TensorRT backend: pinned host buffers, one CUDA stream, async copies; name-based tensors
(``execute_async_v3``) on TensorRT 8.6 and 10.x, the bindings API (``execute_async_v2``) on 8.5.
CUDA through pycuda or cuda-python; with cuda-python an optional CUDA graph replays the inference.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from deploy.engine.config import check_engine_compatible
from deploy.engine.cuda import open_cuda
from deploy.engine.trt import import_tensorrt, parse_version, uses_bindings_api
from deploy.errors import ToolchainError
from deploy.metadata import ModelMetadata, sidecar_path
from deploy.runtime.base import Runner

logger = logging.getLogger(__name__)


class _Buffer:
    def __init__(self, gpu, name: str, shape: tuple[int, ...], dtype: np.dtype, is_input: bool) -> None:
        self.name, self.shape, self.is_input = name, shape, is_input
        self.host = gpu.pinned(int(np.prod(shape)), dtype)
        self.device = gpu.alloc(self.host.nbytes)


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
        trt = import_tensorrt()
        self.gpu = open_cuda(cuda)
        if cuda_graph and not self.gpu.graphs:
            raise ToolchainError(f"CUDA graphs need cuda-python (--cuda cuda-python); {cuda} has no graph API here")
        self.use_graph, self._graph_batch = cuda_graph, None
        self.version = parse_version(trt.__version__)
        self._check_sidecar(path, trt.__version__)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise ToolchainError(
                f"{path}: TensorRT {trt.__version__} cannot load this engine: the file is corrupt or truncated, or it "
                "was built with another TensorRT version or for another GPU; rebuild it on this device"
            )
        self.trt, self.runtime, self.engine = trt, runtime, engine
        self.context = engine.create_execution_context()
        self.bindings_api = uses_bindings_api(self.version)
        self.buffers = self._buffers_trt8() if self.bindings_api else self._buffers()
        self.path = path

    def _check_sidecar(self, path: Path, version: str) -> None:
        if not sidecar_path(path).is_file():
            logger.warning("%s: no sidecar; TensorRT version and GPU cannot be checked before loading", path)
            return
        check_engine_compatible(path, ModelMetadata.load(path).extra, version, self.gpu.capability())

    def _buffers(self) -> list[_Buffer]:
        engine, trt = self.engine, self.trt
        buffers = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = tuple(engine.get_tensor_shape(name))
            if is_input and -1 in shape:
                shape = tuple(engine.get_tensor_profile_shape(name, 0)[2])  # allocate for the profile's max
                self.context.set_input_shape(name, shape)
            if not is_input:
                shape = tuple(self.context.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            buffers.append(_Buffer(self.gpu, name, shape, dtype, is_input))
            self.context.set_tensor_address(name, buffers[-1].device.ptr)
        return buffers

    def _buffers_trt8(self) -> list[_Buffer]:
        engine, trt = self.engine, self.trt
        buffers = []
        for i in range(engine.num_bindings):
            name, is_input = engine.get_binding_name(i), engine.binding_is_input(i)
            shape = tuple(engine.get_binding_shape(i))
            if is_input and -1 in shape:
                shape = tuple(engine.get_profile_shape(0, i)[2])
                self.context.set_binding_shape(i, shape)
            if not is_input:
                shape = tuple(self.context.get_binding_shape(i))
            dtype = np.dtype(trt.nptype(engine.get_binding_dtype(i)))
            buffers.append(_Buffer(self.gpu, name, shape, dtype, is_input))
        return buffers

    @property
    def input_shape(self) -> tuple[int | None, int, int, int]:
        first = next(b for b in self.buffers if b.is_input)
        return first.shape  # type: ignore[return-value]

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        inp = next(b for b in self.buffers if b.is_input)
        n = batch.shape[0]
        if n > inp.shape[0]:
            raise ToolchainError(f"{self.path}: batch {n} is larger than the engine's maximum {inp.shape[0]}")
        shape = (n, *inp.shape[1:])
        if self.bindings_api:
            self._set_shape_trt8(shape)
        else:
            self.context.set_input_shape(inp.name, shape)
        np.copyto(inp.host[: batch.size], batch.ravel())
        if self.use_graph and not self.bindings_api:
            self._replay(n)
        else:
            self._enqueue()
        self.gpu.synchronize()
        outputs = []
        for b in self.buffers:
            if not b.is_input:
                per_item = int(np.prod(b.shape[1:]))
                outputs.append(b.host[: n * per_item].reshape(n, *b.shape[1:]).copy())
        return outputs

    def _enqueue(self) -> None:
        """Copies in, inference, copies out: all queued on the one stream."""
        for b in self.buffers:
            if b.is_input:
                self.gpu.to_device(b.device.ptr, b.host)
        if self.bindings_api:
            self._execute_trt8()
        else:
            self.context.execute_async_v3(self.gpu.stream)
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

    def _set_shape_trt8(self, shape: tuple[int, ...]) -> None:
        self.context.set_binding_shape(0, shape)

    def _execute_trt8(self) -> None:
        self.context.execute_async_v2([b.device.ptr for b in self.buffers], self.gpu.stream)

    def close(self) -> None:
        for b in getattr(self, "buffers", []):
            b.device.free()
        self.buffers = []
        self.context = self.engine = self.runtime = None
        if getattr(self, "gpu", None) is not None:
            self.gpu.close()
            self.gpu = None
