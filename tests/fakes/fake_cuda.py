"""A CUDA device without a GPU: contexts per thread, device memory, streams, graphs, and who did what where.

It models the rules that decide whether TensorRT code works from a worker thread:

- A context is current on a thread through that thread's own context stack (``push``/``pop``).
- Driver-API calls (pycuda) need a current context; there is none on a new thread.
- Runtime-API calls (cuda-python's ``cudart``, and TensorRT, which uses the runtime) use the current
  context, or bind the device's primary context to the thread when there is none.
- Memory, streams and TensorRT objects belong to the context they were made in; using them while
  another context is current is an error.

Every violation is recorded (``violations``) and raised as ``FakeCudaError``; ``calls`` records each
call with its thread and context, so a test can see which thread did what.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

DEVICE_BASE = 0x7F00_0000_0000  # fake device addresses: never valid host addresses


class FakeCudaError(RuntimeError):
    """A call made without the right CUDA context (or on freed memory)."""


@dataclass(eq=False)
class Context:
    id: int
    primary: bool
    thread: int | None  # the creating thread (pycuda refuses to activate a context from another thread)

    def __repr__(self) -> str:
        return "primary context" if self.primary else f"context {self.id} (created by thread {self.thread})"


@dataclass(eq=False)
class Allocation:
    ptr: int
    nbytes: int
    ctx: Context
    data: bytearray


@dataclass
class Graph:
    work: list[Callable[[], None]] = field(default_factory=list)


class FakeDriver:
    """One fake GPU (device 0, compute capability 8.7, "Fake Orin")."""

    name = "Fake Orin"
    capability = (8, 7)

    def __init__(self) -> None:
        self.primary = Context(0, True, None)
        self.initialized = False
        self.primary_retains = 0
        self.violations: list[str] = []
        self.calls: list[tuple[str, str, str]] = []  # (thread name, call, context)
        self._tls = threading.local()
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self.memory: dict[int, Allocation] = {}
        self.pinned: dict[int, ctypes.Array] = {}
        self.streams: dict[int, Context] = {}
        self.capturing: dict[int, Graph] = {}
        self.graphs: dict[int, Graph] = {}
        self.execs: dict[int, Graph] = {}
        self._next_ptr = DEVICE_BASE

    # contexts -----------------------------------------------------------------------------------
    def _stack(self) -> list[Context]:
        if not hasattr(self._tls, "stack"):
            self._tls.stack = []
        return self._tls.stack

    def current(self) -> Context | None:
        stack = self._stack()
        return stack[-1] if stack else None

    def push(self, ctx: Context) -> None:
        self._stack().append(ctx)

    def pop(self) -> Context:
        stack = self._stack()
        if not stack:
            self.fail("pop: no context is current on this thread")
        return stack.pop()

    def make_context(self) -> Context:
        """A new (non-primary) context, made current on the calling thread (cuCtxCreate)."""
        ctx = Context(next(self._ids), False, threading.get_ident())
        self.push(ctx)
        return ctx

    def runtime_context(self, call: str) -> Context:
        """The context a runtime-API call runs in: the current one, or the primary context bound now."""
        if self.current() is None:
            self.push(self.primary)
        ctx = self.current()
        self.record(call, ctx)
        return ctx

    def driver_context(self, call: str) -> Context:
        """The context a driver-API call runs in; none current is an error (CUDA_ERROR_INVALID_CONTEXT)."""
        ctx = self.current()
        if ctx is None:
            self.fail(f"{call}: no CUDA context is current on thread {threading.current_thread().name}")
        self.record(call, ctx)
        return ctx

    def require(self, owner: Context, call: str, runtime: bool = True) -> Context:
        """A call on an object made in ``owner``: the calling thread must have ``owner`` current."""
        ctx = self.runtime_context(call) if runtime else self.driver_context(call)
        if ctx is not owner:
            self.fail(
                f"{call} on thread {threading.current_thread().name}: the object belongs to the {owner!r} "
                f"but the {ctx!r} is current"
            )
        return ctx

    def record(self, call: str, ctx: Context | None) -> None:
        with self._lock:
            self.calls.append((threading.current_thread().name, call, repr(ctx)))

    def fail(self, message: str):
        with self._lock:
            self.violations.append(message)
        raise FakeCudaError(message)

    # memory -------------------------------------------------------------------------------------
    def alloc(self, nbytes: int, ctx: Context) -> int:
        with self._lock:
            ptr = self._next_ptr
            self._next_ptr += (max(nbytes, 1) + 255) // 256 * 256
            self.memory[ptr] = Allocation(ptr, nbytes, ctx, bytearray(nbytes))
        return ptr

    def allocation(self, ptr: int, nbytes: int, ctx: Context, call: str) -> Allocation:
        """The live allocation at ``ptr`` holding ``nbytes``, made in ``ctx``."""
        found = self.memory.get(int(ptr))
        if found is None:
            self.fail(f"{call}: {int(ptr):#x} is not a live device allocation")
        if found.ctx is not ctx:
            self.fail(f"{call}: memory of the {found.ctx!r} used while the {ctx!r} is current")
        if nbytes > found.nbytes:
            self.fail(f"{call}: {nbytes} bytes at {int(ptr):#x}, the allocation holds {found.nbytes}")
        return found

    def free(self, ptr: int, ctx: Context, call: str) -> None:
        self.allocation(ptr, 0, ctx, call)
        del self.memory[int(ptr)]

    def pinned_alloc(self, nbytes: int) -> int:
        buf = ctypes.create_string_buffer(max(nbytes, 1))
        self.pinned[ctypes.addressof(buf)] = buf
        return ctypes.addressof(buf)

    def pinned_free(self, ptr: int, call: str) -> None:
        if self.pinned.pop(int(ptr), None) is None:
            self.fail(f"{call}: {int(ptr):#x} is not pinned host memory")

    def is_device(self, ptr: int) -> bool:
        return int(ptr) in self.memory

    # streams and graphs -------------------------------------------------------------------------
    def create_stream(self, ctx: Context) -> int:
        handle = next(self._ids) * 0x1000
        self.streams[handle] = ctx
        return handle

    def stream_context(self, handle: int, ctx: Context, call: str) -> None:
        owner = self.streams.get(int(handle))
        if owner is None:
            self.fail(f"{call}: stream {int(handle):#x} does not exist")
        if owner is not ctx:
            self.fail(f"{call}: a stream of the {owner!r} used while the {ctx!r} is current")

    def destroy_stream(self, handle: int, ctx: Context, call: str) -> None:
        self.stream_context(handle, ctx, call)
        del self.streams[int(handle)]

    def enqueue(self, handle: int, work: Callable[[], None]) -> None:
        """Run ``work`` now, or record it in the graph being captured on this stream."""
        graph = self.capturing.get(int(handle))
        if graph is not None:
            graph.work.append(work)
        else:
            work()

    def begin_capture(self, handle: int) -> None:
        self.capturing[int(handle)] = Graph()

    def end_capture(self, handle: int, call: str) -> int:
        graph = self.capturing.pop(int(handle), None)
        if graph is None:
            self.fail(f"{call}: stream {int(handle):#x} is not capturing")
        gid = next(self._ids)
        self.graphs[gid] = graph
        return gid

    def instantiate(self, gid: int, call: str) -> int:
        if int(gid) not in self.graphs:
            self.fail(f"{call}: graph {int(gid)} does not exist")
        eid = next(self._ids)
        self.execs[eid] = Graph(list(self.graphs[int(gid)].work))
        return eid

    def launch(self, eid: int, call: str) -> None:
        graph = self.execs.get(int(eid))
        if graph is None:
            self.fail(f"{call}: graph exec {int(eid)} does not exist (destroyed?)")
        for work in graph.work:
            work()

    def live(self) -> dict[str, int]:
        """What is still allocated: a closed runner leaves zeros."""
        return {"device allocations": len(self.memory), "pinned buffers": len(self.pinned),
                "streams": len(self.streams), "graphs": len(self.graphs), "graph execs": len(self.execs)}  # fmt: skip
