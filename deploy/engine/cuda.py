"""The CUDA the TensorRT builder and runner need, through pycuda or cuda-python, in the primary context.

Contexts, by design: every helper here works in the device's primary context, made current with
``activate()`` (push, work, pop) around each use, on whichever thread makes the call.
Why this and not one owning thread: TensorRT uses the CUDA runtime, and the runtime works in the
primary context, so TensorRT's own allocations and ours then share one context; the same runner can
be built on the main thread, run from the pipeline's worker thread and closed on the main thread
again, with nothing to marshal between threads; and no context is left current on any thread after a
call. ``pycuda.autoinit`` is never used: it creates a second, non-primary context current only on the
importing thread, which a worker thread does not have. Calibration buffers are allocated in the same
context, pushed before ``trt.Builder`` exists.

cuda-python: the supported range is the one matching the image's CUDA, 12.x (JetPack 6, NGC 24.x);
its graph calls are the ones whose signature is the same in 11.8, 12.x and 13.x
(``cudaGraphInstantiateWithFlags(graph, flags)``). cuda-python 13.x needs a CUDA 13 driver.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from base.errors import ToolchainError
from deploy.engine.config import CUDA_LIBRARIES
from deploy.engine.trt import CPU_ALTERNATIVE, import_cuda_python, import_pycuda

DRIVER_TOO_OLD = (
    "cudaErrorInsufficientDriver", "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH", "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE"
)


@dataclass
class DeviceBuffer:
    """A device allocation: its address and how to free it."""

    ptr: int
    free: Callable[[], None]


class PycudaCuda:
    """pycuda on the primary context of device 0."""

    graphs = False

    def __init__(self, device: int = 0) -> None:
        self.cuda = import_pycuda()
        try:
            self.cuda.init()
            self.device = self.cuda.Device(device)
            self._context = self.device.retain_primary_context()
        except self.cuda.Error as exc:
            raise ToolchainError(f"no usable CUDA device ({exc}); {CPU_ALTERNATIVE}") from exc
        self._pinned: list[np.ndarray] = []
        with self.activate():
            self._stream = self.cuda.Stream()
        self.stream = self._stream.handle

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Make the primary context current on this thread for the block."""
        self._context.push()
        try:
            yield
        finally:
            self.cuda.Context.pop()

    def pinned(self, count: int, dtype: np.dtype) -> np.ndarray:
        array = self.cuda.pagelocked_empty(count, dtype)
        self._pinned.append(array)
        return array

    def alloc(self, nbytes: int) -> DeviceBuffer:
        allocation = self.cuda.mem_alloc(nbytes)
        return DeviceBuffer(int(allocation), allocation.free)

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        self.cuda.memcpy_htod_async(ptr, host, self._stream)

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        self.cuda.memcpy_dtoh_async(host, ptr, self._stream)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def device_name(self) -> str:
        return self.device.name()

    def capability(self) -> str:
        return "{}.{}".format(*self.device.compute_capability())

    def close(self) -> None:
        """Free the stream and pinned buffers, then release the primary context. Safe to call twice."""
        if self._context is None:
            return
        with self.activate():
            for array in self._pinned:
                array.base.free()
            self._pinned, self._stream = [], None
        self._context.detach()
        self._context = None


class CudaPythonCuda:
    """NVIDIA's cuda-python on the primary context of device 0; supports CUDA graphs."""

    graphs = True

    def __init__(self, device: int = 0) -> None:
        self.cudart, self.cudadrv = import_cuda_python()
        try:
            self._driver(self.cudadrv.cuInit(0), "cuInit")
        except ToolchainError:
            raise
        except Exception as exc:  # cuda-python raises its own errors when the driver library is missing
            raise ToolchainError(f"no NVIDIA driver found by cuda-python ({exc}); {CPU_ALTERNATIVE}") from exc
        (self.device,) = self._driver(self.cudadrv.cuDeviceGet(device), "cuDeviceGet")
        (self._context,) = self._driver(self.cudadrv.cuDevicePrimaryCtxRetain(self.device), "cuDevicePrimaryCtxRetain")
        self._pinned: list[int] = []
        self._graph_exec = None
        with self.activate():
            self.stream = int(self._check(self.cudart.cudaStreamCreate(), "cudaStreamCreate")[0])

    def _check(self, result, call: str) -> list:
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != self.cudart.cudaError_t.cudaSuccess:
            raise ToolchainError(_cuda_error(err, call))
        return values

    def _driver(self, result, call: str) -> list:
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != self.cudadrv.CUresult.CUDA_SUCCESS:
            raise ToolchainError(_cuda_error(err, call))
        return values

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Make the primary context current on this thread for the block."""
        self._driver(self.cudadrv.cuCtxPushCurrent(self._context), "cuCtxPushCurrent")
        try:
            yield
        finally:
            self._driver(self.cudadrv.cuCtxPopCurrent(), "cuCtxPopCurrent")

    def pinned(self, count: int, dtype: np.dtype) -> np.ndarray:
        nbytes = count * np.dtype(dtype).itemsize
        (ptr,) = self._check(self.cudart.cudaMallocHost(nbytes), "cudaMallocHost")
        self._pinned.append(int(ptr))
        return np.frombuffer((ctypes.c_byte * nbytes).from_address(int(ptr)), dtype=dtype)

    def alloc(self, nbytes: int) -> DeviceBuffer:
        (ptr,) = self._check(self.cudart.cudaMalloc(nbytes), "cudaMalloc")
        return DeviceBuffer(int(ptr), lambda: self._check(self.cudart.cudaFree(ptr), "cudaFree"))

    def _copy(self, dst: int, src: int, nbytes: int, kind) -> None:
        self._check(self.cudart.cudaMemcpyAsync(dst, src, nbytes, kind, self.stream), "cudaMemcpyAsync")

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        self._copy(ptr, host.ctypes.data, host.nbytes, self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice)

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        self._copy(host.ctypes.data, ptr, host.nbytes, self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost)

    def synchronize(self) -> None:
        self._check(self.cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def device_name(self) -> str:
        (props,) = self._check(self.cudart.cudaGetDeviceProperties(0), "cudaGetDeviceProperties")
        return bytes(props.name).split(b"\0", 1)[0].decode()

    def capability(self) -> str:
        (props,) = self._check(self.cudart.cudaGetDeviceProperties(0), "cudaGetDeviceProperties")
        return f"{props.major}.{props.minor}"

    def capture(self, enqueue: Callable[[], None]) -> None:
        """Record ``enqueue()`` (work on this stream) as a CUDA graph to ``launch()``; frees the previous one."""
        self._destroy_graph()
        graph = self._record(enqueue)
        try:
            instantiated = self.cudart.cudaGraphInstantiateWithFlags(graph, 0)  # one signature in 11.8, 12.x, 13.x
            (self._graph_exec,) = self._check(instantiated, "cudaGraphInstantiateWithFlags")
        finally:
            self._check(self.cudart.cudaGraphDestroy(graph), "cudaGraphDestroy")

    def _record(self, enqueue: Callable[[], None]):
        cudart = self.cudart
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
        self._check(cudart.cudaStreamBeginCapture(self.stream, mode), "cudaStreamBeginCapture")
        try:
            enqueue()
        except BaseException:
            (graph,) = self._check(cudart.cudaStreamEndCapture(self.stream), "cudaStreamEndCapture")
            self._check(cudart.cudaGraphDestroy(graph), "cudaGraphDestroy")
            raise
        (graph,) = self._check(cudart.cudaStreamEndCapture(self.stream), "cudaStreamEndCapture")
        return graph

    def launch(self) -> None:
        self._check(self.cudart.cudaGraphLaunch(self._graph_exec, self.stream), "cudaGraphLaunch")

    def _destroy_graph(self) -> None:
        if self._graph_exec is not None:
            self._check(self.cudart.cudaGraphExecDestroy(self._graph_exec), "cudaGraphExecDestroy")
            self._graph_exec = None

    def close(self) -> None:
        """Free the graph, pinned buffers and stream, then release the primary context. Safe to call twice."""
        if self._context is None:
            return
        with self.activate():
            self._destroy_graph()
            for ptr in self._pinned:
                self._check(self.cudart.cudaFreeHost(ptr), "cudaFreeHost")
            self._pinned = []
            self._check(self.cudart.cudaStreamDestroy(self.stream), "cudaStreamDestroy")
        self._driver(self.cudadrv.cuDevicePrimaryCtxRelease(self.device), "cuDevicePrimaryCtxRelease")
        self._context = None


def _cuda_error(err, call: str) -> str:
    name = getattr(err, "name", str(err))
    if name in DRIVER_TOO_OLD:
        return (
            f"{call}: {name}: this cuda-python needs a newer NVIDIA driver than this machine has; install the "
            "cuda-python of the image's CUDA: pip install 'cuda-python>=12,<13' (JetPack 6, NGC 24.x)"
        )
    return f"{call} failed: {name}; {CPU_ALTERNATIVE}"


def open_cuda(library: str = "pycuda"):
    """The CUDA helper of ``library`` (``pycuda`` or ``cuda-python``), its primary context retained."""
    if library == "pycuda":
        return PycudaCuda()
    if library == "cuda-python":
        return CudaPythonCuda()
    raise ToolchainError(f"unknown CUDA library '{library}'; expected one of {list(CUDA_LIBRARIES)}")
