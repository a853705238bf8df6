"""``pycuda``, ``pycuda.driver`` and ``pycuda.autoinit`` as pycuda's sources define them, on a FakeDriver.

Names, signatures and semantics follow pycuda's ``src/wrapper/wrap_cudadrv.cpp`` and ``pycuda/autoinit.py``
(github.com/inducer/pycuda): ``init(flags=0)``; ``Device(number)`` with ``name()``,
``compute_capability()``, ``make_context(flags=0)``, ``retain_primary_context()``; ``Context`` with
``push()``, static ``pop()``, ``detach()``, static ``get_current()``; ``Stream(flags=0)`` with
``synchronize()`` and ``handle``; ``mem_alloc(bytes)`` returning a ``DeviceAllocation`` (``int()``,
``free()``); ``memcpy_htod(dest, src)``, ``memcpy_htod_async(dest, src, stream=None)``,
``memcpy_dtoh(dest, src)``, ``memcpy_dtoh_async(dest, src, stream=None)``; ``pagelocked_empty(shape,
dtype, order="C", mem_flags=0)`` whose array's ``base`` is a ``PagelockedHostAllocation`` with ``free()``.
Every driver call needs a current context (pycuda raises ``LogicError`` otherwise); freeing memory
activates its own context, which pycuda refuses from a thread other than the context's creator
("cannot activate out-of-thread context").
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import threading
import types

import numpy as np

from tests.fakes.fake_cuda import Context, FakeCudaError, FakeDriver


class Error(Exception):
    pass


class LogicError(Error, FakeCudaError):
    pass


class DriverRuntimeError(Error):  # pycuda._driver.RuntimeError  # noqa: N818
    pass


def build_driver_module(drv: FakeDriver, log) -> types.ModuleType:
    """A fresh ``pycuda.driver`` on ``drv``; ``log(name)`` is told every public name our code reads."""
    mod = types.ModuleType("pycuda.driver")

    def ctx_for(call: str) -> Context:
        if not drv.initialized:
            raise LogicError(f"{call} failed: initialization error (call pycuda.driver.init() first)")
        try:
            return drv.driver_context(call)
        except FakeCudaError as exc:
            raise LogicError(f"{call} failed: invalid device context ({exc})") from None

    def init(flags=0) -> None:
        drv.initialized = True

    class PyContext:
        def __init__(self, ctx: Context) -> None:
            self.ctx = ctx
            self.detached = False

        def push(self) -> None:
            drv.push(self.ctx)
            drv.record("Context.push", self.ctx)

        @staticmethod
        def pop() -> None:
            try:
                ctx = drv.pop()
            except FakeCudaError as exc:
                raise LogicError(f"context::pop failed: {exc}") from None
            drv.record("Context.pop", ctx)

        @staticmethod
        def get_current():
            current = drv.current()
            return PyContext(current) if current is not None else None

        def detach(self) -> None:
            if self.ctx.primary:
                drv.primary_retains -= 1
            elif drv.current() is self.ctx:
                drv.pop()
            self.detached = True

        @staticmethod
        def synchronize() -> None:
            ctx_for("cuCtxSynchronize")

    class Device:
        def __init__(self, number) -> None:
            if not drv.initialized:
                raise LogicError("cuDeviceGet failed: initialization error")
            if number != 0:
                raise LogicError(f"cuDeviceGet failed: invalid device ordinal {number}")

        @staticmethod
        def count() -> int:
            return 1

        def name(self) -> str:
            return drv.name

        def compute_capability(self) -> tuple[int, int]:
            return drv.capability

        def make_context(self, flags=0) -> PyContext:
            return PyContext(drv.make_context())

        def retain_primary_context(self) -> PyContext:
            drv.primary_retains += 1
            if drv.primary.thread is None:
                drv.primary.thread = threading.get_ident()  # pycuda binds a context object to its thread
            return PyContext(drv.primary)

    class DeviceAllocation:
        def __init__(self, ptr: int, ctx: Context) -> None:
            self.ptr, self.ctx, self.freed = ptr, ctx, False

        def __int__(self) -> int:
            return self.ptr

        __index__ = __int__

        def free(self) -> None:
            if self.freed:
                return
            current = drv.current()
            if current is not self.ctx and self.ctx.thread not in (None, threading.get_ident()):
                raise LogicError("cannot activate out-of-thread context")  # pycuda's scoped_context_activation
            drv.free(self.ptr, self.ctx, "cuMemFree")
            self.freed = True

        def __del__(self) -> None:
            if not self.freed and self.ptr in drv.memory:
                drv.violations.append(f"DeviceAllocation {self.ptr:#x} garbage-collected, never freed")

    class Stream:
        def __init__(self, flags=0) -> None:
            self.ctx = ctx_for("cuStreamCreate")
            self.handle = drv.create_stream(self.ctx)

        def synchronize(self) -> None:
            ctx = ctx_for("cuStreamSynchronize")
            drv.stream_context(self.handle, ctx, "cuStreamSynchronize")

        def __del__(self) -> None:  # pycuda's ~stream: activates its own context (same thread only)
            if self.handle not in drv.streams:
                return
            if drv.current() is not self.ctx and self.ctx.thread != threading.get_ident():
                drv.violations.append("PyCUDA WARNING: a clean-up operation failed (stream of an out-of-thread context)")
                return
            del drv.streams[self.handle]

        def is_done(self) -> bool:
            return True

    class PagelockedHostAllocation:
        def __init__(self, nbytes: int) -> None:
            self.ptr = drv.pinned_alloc(nbytes)

        def free(self) -> None:
            if self.ptr in drv.pinned:
                drv.pinned_free(self.ptr, "cuMemFreeHost")

        def get_flags(self) -> int:
            return 0

    def mem_alloc(nbytes, /) -> DeviceAllocation:
        ctx = ctx_for("cuMemAlloc")
        return DeviceAllocation(drv.alloc(int(nbytes), ctx), ctx)

    def _device(dest, nbytes: int, ctx: Context, call: str):
        return drv.allocation(int(dest), nbytes, ctx, call)

    def _stream(stream, ctx: Context, call: str) -> int:
        if stream is None:
            return 0
        if not isinstance(stream, Stream):
            raise TypeError(f"{call}: stream must be a pycuda.driver.Stream or None, got {type(stream).__name__}")
        drv.stream_context(stream.handle, ctx, call)
        return stream.handle

    def memcpy_htod(dest, src) -> None:
        memcpy_htod_async(dest, src, None)

    def memcpy_htod_async(dest, src, stream=None) -> None:
        ctx = ctx_for("cuMemcpyHtoDAsync")
        data = memoryview(src).cast("B").tobytes()
        target = _device(dest, len(data), ctx, "cuMemcpyHtoDAsync")
        drv.enqueue(_stream(stream, ctx, "cuMemcpyHtoDAsync"), lambda: target.data.__setitem__(slice(0, len(data)), data))

    def memcpy_dtoh(dest, src) -> None:
        memcpy_dtoh_async(dest, src, None)

    def memcpy_dtoh_async(dest, src, stream=None) -> None:
        ctx = ctx_for("cuMemcpyDtoHAsync")
        out = memoryview(dest).cast("B")
        source = _device(src, len(out), ctx, "cuMemcpyDtoHAsync")
        drv.enqueue(_stream(stream, ctx, "cuMemcpyDtoHAsync"), lambda: out.__setitem__(slice(None), source.data[: len(out)]))

    def pagelocked_empty(shape, dtype, order="C", mem_flags=0) -> np.ndarray:
        count = int(np.prod(shape))
        allocation = PagelockedHostAllocation(count * np.dtype(dtype).itemsize)
        raw = np.frombuffer(drv.pinned[allocation.ptr], np.uint8)[: count * np.dtype(dtype).itemsize]
        array = raw.view(dtype).reshape(shape, order=order)
        return _with_base(array, allocation)

    for name, value in {
        "init": init, "Device": Device, "Context": PyContext, "Stream": Stream, "DeviceAllocation": DeviceAllocation,
        "PagelockedHostAllocation": PagelockedHostAllocation, "HostAllocation": PagelockedHostAllocation,
        "mem_alloc": mem_alloc, "memcpy_htod": memcpy_htod, "memcpy_htod_async": memcpy_htod_async,
        "memcpy_dtoh": memcpy_dtoh, "memcpy_dtoh_async": memcpy_dtoh_async, "pagelocked_empty": pagelocked_empty,
        "Error": Error, "LogicError": LogicError, "RuntimeError": DriverRuntimeError, "MemoryError": Error,
        "LaunchError": Error, "get_version": lambda: (12, 2, 0), "get_driver_version": lambda: 12020,
    }.items():  # fmt: skip
        setattr(mod, name, value)
    return _recorded(mod, log)


class _Owned(np.ndarray):
    """An ndarray whose ``base`` is the pinned allocation, like pycuda's (``ary.base.free()``)."""

    _allocation = None

    @property
    def base(self):  # noqa: D401 - numpy's attribute
        return self._allocation


def _with_base(array: np.ndarray, allocation) -> np.ndarray:
    owned = array.view(_Owned)
    owned._allocation = allocation
    return owned


def _recorded(mod: types.ModuleType, log) -> types.ModuleType:
    class Recorded(types.ModuleType):
        def __getattribute__(self, name: str):
            if not name.startswith("_"):
                log(name)
            return super().__getattribute__(name)

    mod.__class__ = Recorded
    return mod


class PycudaFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``pycuda``, ``pycuda.driver`` and ``pycuda.autoinit`` from a FakeDriver; autoinit runs on import."""

    def __init__(self, drv: FakeDriver, log) -> None:
        self.drv, self.log = drv, log

    def find_spec(self, fullname, path=None, target=None):
        if fullname in ("pycuda", "pycuda.driver", "pycuda.autoinit"):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname == "pycuda")
        return None

    def create_module(self, spec):
        if spec.name == "pycuda.driver":
            return build_driver_module(self.drv, self.log)
        return None

    def exec_module(self, module) -> None:
        if module.__name__ == "pycuda.autoinit":  # pycuda/autoinit.py: init, make_default_context, atexit pop
            cuda = importlib.import_module("pycuda.driver")
            cuda.init()
            module.context = cuda.Device(0).make_context()
            module.device = cuda.Device(0)
