"""One fake GPU machine: a fake CUDA device, the fake TensorRT of a version, pycuda per its sources,
and the real cuda-python simulated on the device; installed in ``sys.modules`` for a ``with`` block.

Example:
    >>> with fake_gpu("11.4") as gpu:
    ...     engine_from_onnx("m.int8.onnx", EngineConfig(precision="int8"))
    ...     print(len(gpu.trt.log.sites), gpu.driver.violations)
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.fakes.fake_cuda import FakeDriver
from tests.fakes.fake_pycuda import PycudaFinder
from tests.fakes.fake_tensorrt import CallLog, FakeTensorRT
from tests.fakes.real_cudart import RealCudaModule, driver_simulation, runtime_simulation
from tests.fakes.trt_api import find_version
from tests.fakes.trt_behaviour import BEHAVIOURS

CUDA_PYTHON = ("cuda.bindings.runtime", "cuda.bindings.driver")


@dataclass
class FakeGpu:
    """What a test looks at: the driver (contexts, violations, leaks), the fake TensorRT and the logs."""

    driver: FakeDriver
    trt: FakeTensorRT | None = None
    dla_cores: int = 0
    trt_log: list[str] = field(default_factory=list)
    cuda_log: CallLog = field(default_factory=CallLog)
    cuda_python: str | None = None  # the real cuda-python version simulated here, None when not installed


def _record_cuda(gpu: FakeGpu):
    def record(name: str) -> None:
        gpu.cuda_log.record(name, sys._getframe(2))

    return record


def _real_cuda_python(gpu: FakeGpu) -> dict:
    """``sys.modules`` entries for the real cuda-python, wrapped; empty when it is not installed."""
    try:
        runtime = importlib.import_module("cuda.bindings.runtime")
        driver = importlib.import_module("cuda.bindings.driver")
        bindings = importlib.import_module("cuda.bindings")
    except ImportError:
        return {}
    gpu.cuda_python = getattr(bindings, "__version__", "?")
    record = _record_cuda(gpu)
    return {
        "cuda.bindings.runtime": RealCudaModule(runtime, gpu.driver, runtime_simulation(runtime, gpu.driver), record),
        "cuda.bindings.driver": RealCudaModule(driver, gpu.driver, driver_simulation(driver, gpu.driver), record),
    }


@contextlib.contextmanager
def fake_gpu(version: str | None = "11.4", *, version_string: str | None = None, dla_cores: int = 0,
             cuda_python: bool = True) -> Iterator[FakeGpu]:  # fmt: skip
    """Install a fake GPU with TensorRT ``version`` (a prefix of a dumped version; ``None``: no TensorRT).

    Args:
        version_string: Report this ``trt.__version__`` (8.5's runner path on the 8.6 API).
        dla_cores: DLA cores the builder reports.
        cuda_python: Wrap the installed cuda-python (else ``import cuda.bindings`` fails).
    """
    gpu = FakeGpu(FakeDriver(), dla_cores=dla_cores)
    if version is not None:
        gpu.trt = FakeTensorRT(find_version(version), gpu, BEHAVIOURS, version_string)
    modules = {"tensorrt": gpu.trt.module if gpu.trt else None}
    modules.update(_real_cuda_python(gpu) if cuda_python else dict.fromkeys(CUDA_PYTHON))
    saved = {name: sys.modules.get(name, _MISSING) for name in [*modules, "pycuda", "pycuda.driver", "pycuda.autoinit"]}
    bindings = sys.modules.get("cuda.bindings")
    saved_attrs = {n: getattr(bindings, n, _MISSING) for n in ("runtime", "driver")} if bindings else {}
    finder = PycudaFinder(gpu.driver, _record_cuda(gpu))
    for name in ("pycuda", "pycuda.driver", "pycuda.autoinit"):
        sys.modules.pop(name, None)
    sys.modules.update(modules)
    if bindings is not None:
        for attr in saved_attrs:
            module = modules[f"cuda.bindings.{attr}"]
            if module is not None:
                setattr(bindings, attr, module)
            elif hasattr(bindings, attr):
                delattr(bindings, attr)  # then `from cuda.bindings import runtime` finds None: ImportError
    sys.meta_path.insert(0, finder)
    forget_tensorrt_in_polygraphy()
    try:
        yield gpu
    finally:
        sys.meta_path.remove(finder)
        forget_tensorrt_in_polygraphy()
        for name, module in saved.items():
            if module is _MISSING:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        for attr, value in saved_attrs.items():
            if value is not _MISSING:
                setattr(bindings, attr, value)
            elif hasattr(bindings, attr):
                delattr(bindings, attr)


_MISSING = object()


def forget_tensorrt_in_polygraphy() -> None:
    """Make Polygraphy import ``tensorrt`` again: its lazy modules keep the first module they imported, and
    its TensorRT logger is an instance of that module's ``ILogger``. The fake of another version (or none)
    replaces the module in ``sys.modules``; Polygraphy must then see that one, as a fresh process would."""
    for name, module in list(sys.modules.items()):
        if not name.startswith("polygraphy") or module is None:
            continue
        for value in list(vars(module).values()):
            if type(value).__name__ == "LazyModule" and _lazy_module_name(value) == "tensorrt":
                object.__setattr__(value, "module", None)
        if name == "polygraphy.backend.trt.util":
            module.TRT_LOGGER = None


def _lazy_module_name(lazy) -> str | None:
    imported = vars(lazy).get("module")
    return getattr(imported, "__name__", None) if imported is not None else None
