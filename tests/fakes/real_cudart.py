"""NVIDIA's real cuda-python modules, with their GPU work simulated on a FakeDriver.

cuda-python imports without a GPU, and its functions check their arguments (count, C types) before
they reach the driver. ``RealCudaModule`` wraps ``cuda.bindings.runtime`` or ``cuda.bindings.driver``:
an unknown name raises the real module's ``AttributeError``; each call first goes to the real function
(a wrong signature raises its real ``TypeError``; without a driver it then returns or raises a "no
driver" error, which is dropped) and then returns what a GPU would, built from the module's own types
(``cudaStream_t``, ``cudaGraphExec_t``, ``CUcontext``...). A function the simulation does not know
fails the test with the name to add.
"""

from __future__ import annotations

import ctypes
import threading
import types

from tests.fakes.fake_cuda import FakeCudaError, FakeDriver

MEMCPY_KINDS = {"cudaMemcpyHostToDevice", "cudaMemcpyDeviceToHost"}


class RealCudaModule(types.ModuleType):
    """A real cuda-python module whose calls are checked by it and simulated on ``driver``."""

    def __init__(self, real: types.ModuleType, driver: FakeDriver, simulations: dict, log) -> None:
        super().__init__(real.__name__)
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_simulations", simulations)
        object.__setattr__(self, "_driver", driver)
        object.__setattr__(self, "_log", log)

    def __getattr__(self, name: str):
        real = getattr(object.__getattribute__(self, "_real"), name)  # the real AttributeError for unknown names
        self._log(name)
        if not callable(real) or isinstance(real, type):
            return real
        simulation = self._simulations.get(name)

        def call(*args, **kwargs):
            try:
                real(*args, **kwargs)  # the real argument checks
            except TypeError:
                raise
            except Exception:  # noqa: BLE001, S110 - no driver here: the GPU part is simulated below
                pass
            if simulation is None:
                raise AssertionError(f"{name}: the cuda-python simulation has no behaviour for it; add one")
            return simulation(*args, **kwargs)

        call.__name__ = name
        return call


def runtime_simulation(rt: types.ModuleType, driver: FakeDriver) -> dict:
    """cudart functions: the runtime uses the current context, or binds the primary one."""
    ok = rt.cudaError_t.cudaSuccess

    def ctx(call: str):
        return driver.runtime_context(call)

    def stream_create():
        return ok, rt.cudaStream_t(init_value=driver.create_stream(ctx("cudaStreamCreate")))

    def stream_destroy(stream):
        driver.destroy_stream(int(stream), ctx("cudaStreamDestroy"), "cudaStreamDestroy")
        return (ok,)

    def stream_sync(stream):
        driver.stream_context(int(stream), ctx("cudaStreamSynchronize"), "cudaStreamSynchronize")
        return (ok,)

    def malloc(nbytes):
        return ok, driver.alloc(int(nbytes), ctx("cudaMalloc"))

    def free(ptr):
        driver.free(int(ptr), ctx("cudaFree"), "cudaFree")
        return (ok,)

    def malloc_host(nbytes):
        ctx("cudaMallocHost")
        return ok, driver.pinned_alloc(int(nbytes))

    def free_host(ptr):
        ctx("cudaFreeHost")
        driver.pinned_free(int(ptr), "cudaFreeHost")
        return (ok,)

    def memcpy_async(dst, src, count, kind, stream):
        current = ctx("cudaMemcpyAsync")
        driver.stream_context(int(stream), current, "cudaMemcpyAsync")
        if kind.name not in MEMCPY_KINDS:
            raise AssertionError(f"cudaMemcpyAsync: kind {kind.name} not simulated")
        if kind.name == "cudaMemcpyHostToDevice":
            if driver.is_device(src):
                driver.fail("cudaMemcpyAsync HostToDevice: the source is device memory")
            target = driver.allocation(int(dst), int(count), current, "cudaMemcpyAsync")
            data = ctypes.string_at(int(src), int(count))
            driver.enqueue(int(stream), lambda: target.data.__setitem__(slice(0, int(count)), data))
        else:
            if driver.is_device(dst):
                driver.fail("cudaMemcpyAsync DeviceToHost: the destination is device memory")
            source = driver.allocation(int(src), int(count), current, "cudaMemcpyAsync")
            driver.enqueue(int(stream), lambda: ctypes.memmove(int(dst), bytes(source.data[: int(count)]), int(count)))
        return (ok,)

    def device_properties(device):
        ctx("cudaGetDeviceProperties")
        props = rt.cudaDeviceProp()
        props.major, props.minor = driver.capability
        props.name = driver.name.encode().ljust(256, b"\0")
        return ok, props

    def begin_capture(stream, mode):
        driver.stream_context(int(stream), ctx("cudaStreamBeginCapture"), "cudaStreamBeginCapture")
        driver.begin_capture(int(stream))
        return (ok,)

    def end_capture(stream):
        driver.stream_context(int(stream), ctx("cudaStreamEndCapture"), "cudaStreamEndCapture")
        return ok, rt.cudaGraph_t(init_value=driver.end_capture(int(stream), "cudaStreamEndCapture"))

    def instantiate(graph, flags):
        ctx("cudaGraphInstantiate")
        return ok, rt.cudaGraphExec_t(init_value=driver.instantiate(int(graph), "cudaGraphInstantiate"))

    def graph_launch(graph_exec, stream):
        driver.stream_context(int(stream), ctx("cudaGraphLaunch"), "cudaGraphLaunch")
        driver.launch(int(graph_exec), "cudaGraphLaunch")
        return (ok,)

    def graph_destroy(graph):
        ctx("cudaGraphDestroy")
        del driver.graphs[int(graph)]
        return (ok,)

    def exec_destroy(graph_exec):
        ctx("cudaGraphExecDestroy")
        if driver.execs.pop(int(graph_exec), None) is None:
            driver.fail(f"cudaGraphExecDestroy: graph exec {int(graph_exec)} does not exist")
        return (ok,)

    return {
        "cudaStreamCreate": stream_create, "cudaStreamDestroy": stream_destroy, "cudaStreamSynchronize": stream_sync,
        "cudaMalloc": malloc, "cudaFree": free, "cudaMallocHost": malloc_host, "cudaFreeHost": free_host,
        "cudaMemcpyAsync": memcpy_async, "cudaGetDeviceProperties": device_properties,
        "cudaStreamBeginCapture": begin_capture, "cudaStreamEndCapture": end_capture,
        "cudaGraphInstantiateWithFlags": instantiate, "cudaGraphInstantiate": instantiate, "cudaGraphLaunch": graph_launch,
        "cudaGraphDestroy": graph_destroy, "cudaGraphExecDestroy": exec_destroy,
        "cudaDriverGetVersion": lambda: (ok, 12020), "cudaRuntimeGetVersion": lambda: (ok, 12020),
    }  # fmt: skip


def driver_simulation(dr: types.ModuleType, driver: FakeDriver) -> dict:
    """CUDA driver functions: contexts are pushed and popped per thread."""
    ok = dr.CUresult.CUDA_SUCCESS
    contexts = {0: driver.primary}

    def init(flags):
        driver.initialized = True
        return (ok,)

    def device_get(ordinal):
        return ok, dr.CUdevice(int(ordinal))

    def retain(device):
        driver.primary_retains += 1
        return ok, dr.CUcontext(init_value=0x1)

    def release(device):
        driver.primary_retains -= 1
        return (ok,)

    def push(context):
        driver.push(contexts[int(context) - 1])
        driver.record("cuCtxPushCurrent", driver.current())
        return (ok,)

    def pop():
        try:
            popped = driver.pop()
        except FakeCudaError:
            return dr.CUresult.CUDA_ERROR_INVALID_CONTEXT, None
        driver.record(f"cuCtxPopCurrent on {threading.current_thread().name}", popped)
        return ok, dr.CUcontext(init_value=popped.id + 1)

    return {"cuInit": init, "cuDeviceGet": device_get, "cuDevicePrimaryCtxRetain": retain,
            "cuDevicePrimaryCtxRelease": release, "cuCtxPushCurrent": push, "cuCtxPopCurrent": pop}  # fmt: skip
