"""Every TensorRT code path of ours, as functions to run on a fake GPU; and a report of call sites.

Each path runs our code (deploy.engine.build, deploy.runtime.tensorrt) in a ``fake_gpu`` of one
TensorRT version and asserts what the user would see: the engine, its sidecar's true precision and
layer report, the runner's outputs, or the one-line refusal where that version cannot do it.

    $ python -m tests.fakes.paths          # per version: paths passed and TensorRT call sites executed
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from tests.fakes.env import FakeGpu, fake_gpu
from tests.fakes.onnx_models import float_onnx, fp16_onnx, qdq_onnx
from tests.fakes.trt_api import dump_versions

VERSIONS = ["8.6", "10.0", "10.3", "10.8", "10.13", "11.4"]
assert all(any(v.startswith(p + ".") for v in dump_versions()) for p in VERSIONS)


def _major(gpu: FakeGpu) -> int:
    return int(gpu.trt.version.split(".")[0])


def build(onnx: Path, out: Path, **cfg):
    """Build with our builder; returns (engine path, sidecar)."""
    from base.metadata import ModelMetadata
    from deploy.engine.build import engine_from_onnx
    from deploy.engine.config import EngineConfig

    path = engine_from_onnx(onnx, EngineConfig(**cfg), out)
    return path, ModelMetadata.load(path)


def refused(call: Callable, *args, **kwargs) -> str:
    """The one-line ToolchainError message of a call that must be refused."""
    from base.errors import ToolchainError

    try:
        call(*args, **kwargs)
    except ToolchainError as exc:
        message = str(exc)
        assert "\n" not in message, message
        return message
    raise AssertionError(f"{call.__name__} was not refused")


def _layers(meta) -> dict:
    return meta.extra["layers"]["precisions"]


def int8_from_qdq(gpu: FakeGpu, tmp: Path) -> None:
    _, meta = build(qdq_onnx(tmp / "m.int8.onnx", dynamic=False), tmp / "m.int8.engine", precision="int8")
    assert meta.precision == "int8" and _layers(meta).get("INT8") == 1, meta.extra["layers"]
    assert meta.extra["strongly_typed"] == (_major(gpu) >= 10) and meta.extra["int8_source"] == "qdq"


def fp16_from_fp16_onnx(gpu: FakeGpu, tmp: Path) -> None:
    _, meta = build(fp16_onnx(tmp / "m.fp16.onnx", dynamic=False), tmp / "m.fp16.engine", precision="fp16")
    assert meta.precision == "fp16" and _layers(meta).get("FP16", 0) >= 2, meta.extra["layers"]  # conv, sigmoid
    assert meta.extra["onnx_types"] == {"qdq": False, "float16": True}


def fp16_from_fp32_onnx(gpu: FakeGpu, tmp: Path) -> None:
    onnx = float_onnx(tmp / "m.onnx", dynamic=False)
    if _major(gpu) >= 11:
        message = refused(build, onnx, tmp / "m.fp16.engine", precision="fp16")
        assert "needs FP16 types in the ONNX" in message and str(tmp / "m.fp16.onnx") in message, message
        return
    _, meta = build(onnx, tmp / "m.fp16.engine", precision="fp16")
    assert meta.precision == "fp16" and _layers(meta).get("FP16") == 2, meta.extra["layers"]


def fp32(gpu: FakeGpu, tmp: Path) -> None:
    _, meta = build(float_onnx(tmp / "m.onnx", dynamic=False), tmp / "m.fp32.engine", precision="fp32")
    assert meta.precision == "fp32" and _layers(meta) == {"FP32": 2}, meta.extra["layers"]


def calibrated_int8(gpu: FakeGpu, tmp: Path) -> None:
    images = tmp / "calib"
    images.mkdir()
    for i in range(5):
        cv2.imwrite(str(images / f"{i}.png"), np.full((20, 24, 3), 40 * i, np.uint8))
    cfg = {"precision": "int8", "calib_images": str(images), "calib_cache": str(tmp / "calib.cache"), "max_batch": 2,
           "opt_batch": 2, "calib_batches": 2}  # fmt: skip
    onnx = float_onnx(tmp / "m.onnx")
    if _major(gpu) >= 11:
        message = refused(build, onnx, tmp / "m.int8.engine", **cfg)
        assert "no INT8 calibration" in message and "QDQ ONNX" in message, message
        return
    _, meta = build(onnx, tmp / "m.int8.engine", **cfg)
    assert meta.precision == "int8" and meta.extra["int8_source"] == "calibration" and _layers(meta).get("INT8") == 1
    assert (tmp / "calib.cache").read_bytes().endswith(b"2 batches")


def dynamic_batch(gpu: FakeGpu, tmp: Path) -> None:
    cfg = {"precision": "int8", "min_batch": 1, "opt_batch": 2, "max_batch": 4}
    _, meta = build(qdq_onnx(tmp / "m.int8.onnx"), tmp / "m.int8.engine", **cfg)
    assert meta.extra["profile"] == [[1, 3, 16, 16], [2, 3, 16, 16], [4, 3, 16, 16]]
    assert "unknown" not in _layers(meta) and _layers(meta).get("INT8") == 1, meta.extra["layers"]


def timing_cache(gpu: FakeGpu, tmp: Path) -> None:
    onnx, cache = qdq_onnx(tmp / "m.int8.onnx", dynamic=False), tmp / "timing.cache"
    build(onnx, tmp / "a.int8.engine", precision="int8", timing_cache=str(cache))
    first = cache.read_bytes()
    build(onnx, tmp / "b.int8.engine", precision="int8", timing_cache=str(cache))
    assert first.endswith(b"1") and cache.read_bytes().endswith(b"2"), (first, cache.read_bytes())


def dla(gpu: FakeGpu, tmp: Path) -> None:
    gpu.dla_cores = 2
    onnx = qdq_onnx(tmp / "m.int8.onnx", dynamic=False)
    _, meta = build(onnx, tmp / "m.int8.engine", precision="int8", dla_core=1)
    assert meta.extra["engine"]["dla_core"] == 1
    assert "DLA core 2 requested, this device has 2" in refused(build, onnx, tmp / "x.engine", precision="int8", dla_core=2)


def _runner_outputs(engine: Path, cuda: str, graph: bool = False) -> None:
    from deploy.runtime.tensorrt import TensorRTRunner

    rng = np.random.default_rng(0)
    with TensorRTRunner(engine, cuda=cuda, cuda_graph=graph) as runner:
        assert runner.input_shape == (4, 3, 16, 16)
        for n in (2, 1, 2, 4):
            batch = rng.random((n, 3, 16, 16), dtype=np.float32)
            (out,) = runner.infer(batch)
            expected = batch.reshape(n, -1).mean(axis=1)
            assert out.shape == (n, 4, 16, 16) and np.allclose(out[:, 0, 0, 0], expected, atol=1e-6), (n, out[:, 0, 0, 0])
        for shape in ((5, 3, 16, 16), (1, 3, 32, 16), (1, 3, 16)):
            message = refused(runner.infer, rng.random(shape, dtype=np.float32))
            assert "outside the engine's profile (batch 1-4, channels 3, height 16, width 16)" in message, message


def _engine(gpu: FakeGpu, tmp: Path) -> Path:
    path, _ = build(float_onnx(tmp / "m.onnx"), tmp / "m.fp32.engine", precision="fp32", max_batch=4, opt_batch=2)
    return path


def runner_v3_pycuda(gpu: FakeGpu, tmp: Path) -> None:
    _runner_outputs(_engine(gpu, tmp), "pycuda")


def runner_v3_cuda_python(gpu: FakeGpu, tmp: Path) -> None:
    _runner_outputs(_engine(gpu, tmp), "cuda-python")


def cuda_graphs(gpu: FakeGpu, tmp: Path) -> None:
    _runner_outputs(_engine(gpu, tmp), "cuda-python", graph=True)
    launches = [c for _, c, _ in gpu.driver.calls if c == "cudaGraphLaunch"]
    assert len(launches) >= 4, launches


PATHS: dict[str, Callable[[FakeGpu, Path], None]] = {
    "int8_from_qdq": int8_from_qdq, "fp16_from_fp16_onnx": fp16_from_fp16_onnx,
    "fp16_from_fp32_onnx": fp16_from_fp32_onnx, "fp32": fp32, "calibrated_int8": calibrated_int8,
    "dynamic_batch": dynamic_batch, "timing_cache": timing_cache, "dla": dla, "runner_v3_pycuda": runner_v3_pycuda,
    "runner_v3_cuda_python": runner_v3_cuda_python, "cuda_graphs": cuda_graphs,
}  # fmt: skip
BINDINGS_VERSION = "8.5.3.1"  # JetPack 5's TensorRT: the bindings API, run on the 8.6 dump (a superset of 8.5's)


def run_path(version: str, name: str, tmp: Path, version_string: str | None = None) -> FakeGpu:
    """Run one path on a fresh fake GPU; returns it (logs, driver) after checking nothing leaked."""
    with fake_gpu(version, version_string=version_string) as gpu:
        PATHS[name](gpu, tmp)
        assert not gpu.driver.violations, gpu.driver.violations
        leaked = {k: v for k, v in gpu.driver.live().items() if v}
        assert not leaked, f"left allocated after {name}: {leaked}"
    return gpu


def runner_bindings(tmp: Path) -> FakeGpu:
    """The 8.5 runner (bindings API, execute_async_v2) on the 8.6 API, pycuda and cuda-python."""
    with fake_gpu("8.6", version_string=BINDINGS_VERSION) as gpu:
        engine = _engine(gpu, tmp)
        _runner_outputs(engine, "pycuda")
        _runner_outputs(engine, "cuda-python")
        assert any(name.endswith("execute_async_v2") for name in gpu.trt.log.names())
        assert not gpu.driver.violations and not any(gpu.driver.live().values()), gpu.driver.live()
    return gpu


def call_sites(version: str) -> tuple[int, int, int, int, int, list[str]]:
    """(paths run, TensorRT call sites in deploy/, in Polygraphy, distinct TensorRT names, pycuda/cuda-python
    call sites, failed paths)."""
    sites, names, cuda_sites, failed = {}, set(), set(), []
    runs = [(name, None) for name in PATHS] + ([("runner_bindings", BINDINGS_VERSION)] if version == "8.6" else [])
    for name, version_string in runs:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                gpu = runner_bindings(Path(tmp)) if version_string else run_path(version, name, Path(tmp))
            except Exception as exc:  # noqa: BLE001 - reported, the command then fails
                failed.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
        for site, api in gpu.trt.log.sites.items():
            sites.setdefault(site, set()).update(api)
        names |= gpu.trt.log.names()
        cuda_sites |= set(gpu.cuda_log.sites)
    ours = sum(1 for file, _ in sites if file.startswith("deploy"))
    return len(runs), ours, len(sites) - ours, len(names), len(cuda_sites), failed


def main() -> int:
    failures = 0
    for version in VERSIONS:
        runs, ours, theirs, names, cuda, failed = call_sites(version)
        print(f"TensorRT {version}: {runs - len(failed)}/{runs} paths passed, TensorRT call sites executed: {ours} "
              f"in deploy/, {theirs} in Polygraphy ({names} distinct API names); {cuda} pycuda/cuda-python call "
              "sites")  # fmt: skip
        for line in failed:
            print(f"  FAILED {line}")
        failures += len(failed)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
