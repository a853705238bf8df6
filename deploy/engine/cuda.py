"""The CUDA calls the TensorRT runner needs, behind one small interface, from pycuda or cuda-python.

pycuda is JetPack's usual choice; cuda-python (NVIDIA's official bindings) is the alternative and
also gives CUDA graphs, which replay a captured ``execute_async_v3`` with one launch.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from deploy.engine.trt import CPU_ALTERNATIVE, import_pycuda
from deploy.errors import ToolchainError

CUDA_LIBRARIES = ("pycuda", "cuda-python")


@dataclass
class DeviceBuffer:
    """A device allocation: its address and how to free it."""

    ptr: int
    free: object


class PycudaCuda:
    """pycuda (``pycuda.autoinit`` makes the context)."""

    graphs = False

    def __init__(self) -> None:
        self.cuda = import_pycuda()
        self._stream = self.cuda.Stream()
        self.stream = self._stream.handle

    def pinned(self, count: int, dtype: np.dtype) -> np.ndarray:
        return self.cuda.pagelocked_empty(count, dtype)

    def alloc(self, nbytes: int) -> DeviceBuffer:
        allocation = self.cuda.mem_alloc(nbytes)
        return DeviceBuffer(int(allocation), allocation.free)

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        self.cuda.memcpy_htod_async(ptr, host, self._stream)

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        self.cuda.memcpy_dtoh_async(host, ptr, self._stream)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def capability(self) -> str:
        return "{}.{}".format(*self.cuda.Device(0).compute_capability())

    def close(self) -> None:
        self._stream = None


def _import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python 12.6+
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as exc:
            raise ToolchainError(f"cuda-python is not installed: pip install cuda-python; {CPU_ALTERNATIVE}") from exc
    return cudart


class CudaPythonCuda:
    """NVIDIA's cuda-python runtime bindings; supports CUDA graphs."""

    graphs = True

    def __init__(self) -> None:
        self.cudart = _import_cudart()
        self.stream = int(self._check(self.cudart.cudaStreamCreate())[0])
        self._pinned: list[int] = []
        self._graph_exec = None

    def _check(self, result):
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != self.cudart.cudaError_t.cudaSuccess:
            raise ToolchainError(f"CUDA error {err}; {CPU_ALTERNATIVE}")
        return values

    def pinned(self, count: int, dtype: np.dtype) -> np.ndarray:
        nbytes = count * np.dtype(dtype).itemsize
        (ptr,) = self._check(self.cudart.cudaMallocHost(nbytes))
        self._pinned.append(ptr)
        return np.frombuffer((ctypes.c_byte * nbytes).from_address(ptr), dtype=dtype)

    def alloc(self, nbytes: int) -> DeviceBuffer:
        (ptr,) = self._check(self.cudart.cudaMalloc(nbytes))
        return DeviceBuffer(int(ptr), lambda: self._check(self.cudart.cudaFree(ptr)))

    def _copy(self, dst: int, src: int, nbytes: int, kind) -> None:
        self._check(self.cudart.cudaMemcpyAsync(dst, src, nbytes, kind, self.stream))

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        self._copy(ptr, host.ctypes.data, host.nbytes, self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice)

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        self._copy(host.ctypes.data, ptr, host.nbytes, self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost)

    def synchronize(self) -> None:
        self._check(self.cudart.cudaStreamSynchronize(self.stream))

    def capability(self) -> str:
        (props,) = self._check(self.cudart.cudaGetDeviceProperties(0))
        return f"{props.major}.{props.minor}"

    def capture(self, enqueue) -> None:
        """Record ``enqueue()`` (work on this stream) as a CUDA graph, to ``launch()`` later."""
        cudart = self.cudart
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
        self._check(cudart.cudaStreamBeginCapture(self.stream, mode))
        enqueue()
        (graph,) = self._check(cudart.cudaStreamEndCapture(self.stream))
        (self._graph_exec,) = self._check(cudart.cudaGraphInstantiate(graph, 0))
        self._check(cudart.cudaGraphDestroy(graph))

    def launch(self) -> None:
        self._check(self.cudart.cudaGraphLaunch(self._graph_exec, self.stream))

    def close(self) -> None:
        if self._graph_exec is not None:
            self._check(self.cudart.cudaGraphExecDestroy(self._graph_exec))
            self._graph_exec = None
        for ptr in self._pinned:
            self._check(self.cudart.cudaFreeHost(ptr))
        self._pinned = []
        if self.stream:
            self._check(self.cudart.cudaStreamDestroy(self.stream))
            self.stream = 0


def open_cuda(library: str = "pycuda"):
    """The CUDA helper of ``library`` (``pycuda`` or ``cuda-python``)."""
    if library == "pycuda":
        return PycudaCuda()
    if library == "cuda-python":
        return CudaPythonCuda()
    raise ToolchainError(f"unknown CUDA library '{library}'; expected one of {list(CUDA_LIBRARIES)}")
