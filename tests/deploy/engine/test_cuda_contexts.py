"""CUDA contexts by design: no call from a thread without the right context, the pipeline's worker first.

The fake CUDA device (tests/fakes/fake_cuda.py) keeps a context stack per thread as the driver does:
pycuda's calls need a current context; the runtime (cuda-python's cudart, and TensorRT) uses the
current one or binds the primary context; memory, streams and TensorRT objects belong to the context
they were made in. Before the fix these tests failed: ``pycuda.autoinit`` made a context current on
the main thread only, so the worker's first copy raised "invalid device context".
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from deploy.live.outputs import Outputs
from deploy.live.pipeline import PipelineConfig, run_pipeline
from deploy.live.sources import Frame, FrameSource
from tests.fakes.env import fake_gpu
from tests.fakes.onnx_models import detector_onnx
from tests.fakes.paths import build, calibrated_int8


class Frames(FrameSource):
    name = "frames"

    def __init__(self, count: int) -> None:
        self.count = count

    def __iter__(self):
        rng = np.random.default_rng(0)
        for i in range(self.count):
            yield Frame(i, rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), "frames", time.perf_counter())


def _worker_calls(gpu, call: str) -> list[tuple[str, str]]:
    return [(thread, ctx) for thread, name, ctx in gpu.driver.calls if name == call and thread != "MainThread"]


@pytest.mark.parametrize("cuda", ["pycuda", "cuda-python"])
def test_the_pipeline_worker_thread_runs_tensorrt_in_the_runners_context(cuda, tmp_path):
    from deploy.runtime import create_runner

    with fake_gpu("10.3") as gpu:
        options = {"cuda": cuda} if cuda != "pycuda" else {}  # pycuda: the default
        engine, _ = build(detector_onnx(tmp_path / "d.onnx", dynamic=False), tmp_path / "d.fp32.engine",
                          precision="fp32", **options)  # fmt: skip
        runner = create_runner(engine, "tensorrt", cuda=cuda)  # made on the main thread
        summary = run_pipeline(Frames(6), runner, Outputs(["a", "b"]), PipelineConfig(imgsz=(16, 16)))
        runner.close()  # closed on the main thread
        assert summary.frames == 6
        assert not gpu.driver.violations, gpu.driver.violations
        executed = _worker_calls(gpu, "execute_async_v3")
        assert len(executed) == 6 and {ctx for _, ctx in executed} == {"primary context"}, executed
        assert not any(gpu.driver.live().values()), gpu.driver.live()


def test_a_runner_made_on_one_thread_runs_and_closes_on_others(tmp_path):
    from deploy.runtime.tensorrt import TensorRTRunner

    with fake_gpu("11.4") as gpu:
        engine, _ = build(detector_onnx(tmp_path / "d.onnx"), tmp_path / "d.fp32.engine", precision="fp32",
                          max_batch=2)  # fmt: skip
        made = {}
        maker = threading.Thread(target=lambda: made.setdefault("runner", TensorRTRunner(engine)), name="maker")
        maker.start()
        maker.join()
        runner = made["runner"]
        user = threading.Thread(target=lambda: made.setdefault("out", runner.infer(np.ones((2, 3, 16, 16), np.float32))),
                                name="user")  # fmt: skip
        user.start()
        user.join()
        runner.close()
        assert made["out"][0].shape == (2, 6, 8) and np.allclose(made["out"][0], 1.0)
        assert not gpu.driver.violations and not any(gpu.driver.live().values()), gpu.driver.violations


def test_calibration_has_its_context_before_the_builder_exists(tmp_path):
    with fake_gpu("10.3") as gpu:
        calibrated_int8(gpu, tmp_path)
        calls = [name for _, name, _ in gpu.driver.calls]
        assert calls.index("Context.push") < calls.index("Builder()"), calls[:5]
        builder_ctx = next(ctx for _, name, ctx in gpu.driver.calls if name == "Builder()")
        batch_ctx = {ctx for _, name, ctx in gpu.driver.calls if name == "calibration"}
        assert builder_ctx == "primary context" and batch_ctx == {"primary context"}
        assert not gpu.driver.violations


def test_the_fake_catches_a_call_from_a_thread_without_the_context(tmp_path):
    """The property the tests above rely on: pycuda on a thread that has no context fails."""
    with fake_gpu("10.3"):
        import pycuda.autoinit  # noqa: F401 - what the old code did: a context on this thread only
        import pycuda.driver as cuda

        allocation = cuda.mem_alloc(64)
        errors = []

        def copy() -> None:
            try:
                cuda.memcpy_htod(allocation, np.zeros(16, np.float32))
            except cuda.LogicError as exc:
                errors.append(str(exc))

        worker = threading.Thread(target=copy)
        worker.start()
        worker.join()
        assert errors and "invalid device context" in errors[0]
        allocation.free()
