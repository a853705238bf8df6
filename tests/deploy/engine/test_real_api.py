"""Every TensorRT code path of ours against NVIDIA's real Python API of each version, without a GPU.

The fake ``tensorrt`` of each version is generated from the dump of NVIDIA's bindings
(tests/data/trt_api, tools/trt_api/make.sh): the real classes, members, enum values and pybind11
signatures, nothing else (tests/fakes). pycuda follows its sources; cuda-python is the real module.
A planted break (an unguarded name of another version, a wrong keyword) must fail these runs, and a
failed status of any TensorRT call must end in a clear ToolchainError with nothing left allocated.
``python -m tests.fakes.paths`` prints the call sites each version executes.
"""

from __future__ import annotations

import numpy as np
import pytest

from base.errors import ToolchainError
from deploy.runtime.tensorrt import TensorRTRunner
from tests.fakes.env import fake_gpu
from tests.fakes.onnx_models import float_onnx
from tests.fakes.paths import BINDINGS_VERSION, PATHS, VERSIONS, build, run_path, runner_bindings
from tests.fakes.plant import planted

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("version", VERSIONS)
def test_every_path_on_the_real_api(version, path, tmp_path):
    gpu = run_path(version, path, tmp_path)
    assert gpu.trt.log.sites, "the path touched no TensorRT name from deploy/"


def test_the_85_runner_uses_the_bindings_api(tmp_path):
    gpu = runner_bindings(tmp_path)
    assert gpu.trt.version == BINDINGS_VERSION


BUILD, RUNTIME, CUDA, PRECISION = "deploy.engine.build", "deploy.runtime.tensorrt", "deploy.engine.cuda", "deploy.engine.precision"
PLANTS = {
    # What our builder decides and hands to Polygraphy (it raises PolygraphyException: our ToolchainError)
    "INT8 flag unguarded, on 11.4": (BUILD, 'int8="INT8" in plan.flags', "int8=True", "11.4", "int8_from_qdq",
                                     ToolchainError),
    "FP16 flag unguarded, on 11.4": (BUILD, 'fp16="FP16" in plan.flags', "fp16=True", "11.4", "fp32", ToolchainError),
    "STRONGLY_TYPED (10+) unguarded, on 8.6": (BUILD, "strongly_typed=plan.strongly_typed)", "strongly_typed=True)",
                                               "8.6", "fp32", ToolchainError),
    "the dynamic batch's profile dropped, on 10.3": (BUILD, "profiles=[poly.Profile().add(input_.name, *shapes)]",
                                                     "profiles=None", "10.3", "dynamic_batch", ToolchainError),
    "calibration unguarded, on 11.4": (PRECISION, "    if not features.calibrators:", "    if False:", "11.4",
                                       "calibrated_int8", AttributeError),
    "execute_async_v2 (removed in 10) on 10.3": (
        RUNTIME, "            ok = self.context.execute_async_v3(self.gpu.stream)",
        "            ok = self.context.execute_async_v2([b.device.ptr for b in self.buffers], self.gpu.stream)",
        "10.3", "runner_v3_pycuda", AttributeError),
    "a keyword the bindings do not have, on 10.0": (
        RUNTIME, "self.context.execute_async_v3(self.gpu.stream)", "self.context.execute_async_v3(stream=self.gpu.stream)",
        "10.0", "runner_v3_pycuda", TypeError),
    "an argument missing, on 10.8": (BUILD, "config.set_timing_cache(cache, False)", "config.set_timing_cache(cache)",
                                     "10.8", "timing_cache", TypeError),
    "a wrong enum, on 10.13": (BUILD, "trt.MemoryPoolType.WORKSPACE:", "trt.DeviceType.DLA:", "10.13", "dla",
                               TypeError),
    "a typo, on 8.6": (BUILD, "trt.MemoryPoolType.WORKSPACE:", "trt.MemoryPoolType.WORKSPAC:", "8.6", "fp32",
                       AttributeError),
    "the bindings API (8.x only) forced, on 10.3": (
        RUNTIME, "self.bindings_api = self.features.bindings_api", "self.bindings_api = True", "10.3",
        "runner_v3_pycuda", AttributeError),
}  # fmt: skip


@pytest.mark.parametrize("plant", list(PLANTS))
def test_a_planted_break_fails_the_real_api_run(plant, tmp_path):
    module, old, new, version, path, error = PLANTS[plant]
    with planted(module, old, new), pytest.raises(error):
        run_path(version, path, tmp_path)


RUNNER_CALLS = {
    "IExecutionContext.execute_async_v3": "could not enqueue the inference",
    "IExecutionContext.set_input_shape": "TensorRT refused images shape",
    "IExecutionContext.set_tensor_address": "TensorRT refused images's address",
    "Runtime.deserialize_cuda_engine": "cannot load this engine",
    "ICudaEngine.create_execution_context": "cannot create an execution context",
}
BUILD_CALLS = {
    "OnnxParser.parse_from_file": ("fp32", "TensorRT's ONNX parser failed"),
    "Builder.build_serialized_network": ("fp32", "TensorRT failed to build the engine"),
    "IBuilderConfig.set_timing_cache": ("timing_cache", "rejected this timing cache"),
    "IBuilderConfig.add_optimization_profile": ("dynamic_batch", "refused the optimization profile"),
    "IExecutionContext.set_input_shape": ("dynamic_batch", "refused the opt shape"),
    "Builder.create_network": ("fp32", "Invalid network"),
}


@pytest.mark.parametrize("call", list(RUNNER_CALLS))
@pytest.mark.parametrize("version", ["8.6", "11.4"])
def test_a_failed_runner_call_is_a_clear_error_and_frees_everything(version, call, tmp_path):
    with fake_gpu(version) as gpu:
        engine, _ = build(float_onnx(tmp_path / "m.onnx"), tmp_path / "m.fp32.engine", precision="fp32", max_batch=4)
        gpu.trt.fail.add(call)
        with pytest.raises(ToolchainError, match=RUNNER_CALLS[call]):
            with TensorRTRunner(engine) as runner:
                runner.infer(np.zeros((2, 3, 16, 16), "float32"))
        assert not any(gpu.driver.live().values()) and not gpu.driver.violations, gpu.driver.live()


@pytest.mark.parametrize("call", list(BUILD_CALLS))
def test_a_failed_builder_call_is_a_clear_error(call, tmp_path):
    path, message = BUILD_CALLS[call]
    with fake_gpu("10.3") as gpu:
        gpu.trt.fail.add(call)
        with pytest.raises(ToolchainError, match=message):
            PATHS[path](gpu, tmp_path)
        assert not any(gpu.driver.live().values()) and not gpu.driver.violations, gpu.driver.live()


def test_the_85_bindings_calls_are_checked(tmp_path):
    with fake_gpu("8.6", version_string=BINDINGS_VERSION) as gpu:
        engine, _ = build(float_onnx(tmp_path / "m.onnx"), tmp_path / "m.fp32.engine", precision="fp32", max_batch=4)
        for call, message in [("IExecutionContext.execute_async_v2", "could not enqueue"),
                              ("IExecutionContext.set_binding_shape", "refused binding 0 shape")]:  # fmt: skip
            gpu.trt.fail = {call}
            with pytest.raises(ToolchainError, match=message):
                with TensorRTRunner(engine) as runner:
                    runner.infer(np.zeros((1, 3, 16, 16), "float32"))
        assert not any(gpu.driver.live().values())


@pytest.mark.parametrize("cuda", ["pycuda", "cuda-python"])
@pytest.mark.parametrize("version", ["10.3", "11.4"])
def test_a_batch_in_the_runner_s_pinned_buffer_goes_to_the_gpu_with_no_host_copy(version, cuda, tmp_path):
    rng = np.random.default_rng(1)
    with fake_gpu(version) as gpu:
        engine, _ = build(float_onnx(tmp_path / "m.onnx"), tmp_path / "m.fp32.engine", precision="fp32", max_batch=4)
        with TensorRTRunner(engine, cuda=cuda) as runner:
            own = next(b for b in runner.buffers if b.is_input).host
            pinned = runner.host_buffer((2, 3, 16, 16), np.float32)
            pinned[:] = rng.random(pinned.shape, dtype=np.float32)
            own[:] = -1.0
            (out,) = runner.infer(pinned)
            assert np.allclose(out[:, 0, 0, 0], pinned.reshape(2, -1).mean(axis=1), atol=1e-6)
            assert (own == -1.0).all(), "the pinned batch was copied into the runner's own buffer"
            plain = rng.random((1, 3, 16, 16), dtype=np.float32)  # pageable: staged through the runner's buffer
            (out,) = runner.infer(plain)
            assert np.allclose(out[0, 0, 0, 0], plain.mean(), atol=1e-6) and np.array_equal(own[: plain.size], plain.ravel())
        assert not any(gpu.driver.live().values()) and not gpu.driver.violations, gpu.driver.live()


def test_an_end_to_end_graph_s_thresholds_reach_the_engine_sidecar(tmp_path):
    from base.metadata import ModelMetadata

    onnx = float_onnx(tmp_path / "m.onnx", dynamic=False)
    thresholds = {"conf": 0.25, "iou": 0.7, "max_det": 300}
    ModelMetadata(names=["a"], imgsz=(16, 16), extra={"end_to_end": thresholds}).save(onnx)
    with fake_gpu("10.3"):
        _, meta = build(onnx, tmp_path / "m.fp32.engine", precision="fp32")
        _, plain = build(float_onnx(tmp_path / "p.onnx", dynamic=False), tmp_path / "p.fp32.engine", precision="fp32")
    assert meta.extra["end_to_end"] == thresholds and "end_to_end" not in plain.extra
