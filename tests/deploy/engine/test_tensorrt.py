"""TensorRT engines and runner on a GPU; skipped with the reason where TensorRT, pycuda or a GPU is missing."""

from __future__ import annotations

import numpy as np
import pytest

from base.errors import ToolchainError
from deploy.runtime import create_runner


def test_missing_engine_is_a_clear_error_without_tensorrt(tmp_path):
    with pytest.raises(ToolchainError, match="engine not found; build one with 'make engine'"):
        create_runner(tmp_path / "m.int8.engine", "auto")
    with pytest.raises(ToolchainError, match="runs only with --backend tensorrt"):
        create_runner(tmp_path / "m.int8.engine", "openvino")


@pytest.fixture(scope="module")
def gpu_stack():
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (NVIDIA container or JetPack only)")
    cuda = pytest.importorskip("pycuda.driver", reason="pycuda is not installed")
    try:
        cuda.init()
        cuda.Device(0)
    except Exception as exc:  # no GPU or driver
        pytest.skip(f"no usable CUDA device: {exc}")
    return trt


@pytest.fixture(scope="module")
def float_onnx(gpu_stack, tmp_path_factory, tiny_checkpoint):
    from toolchain.export.onnx import ExportConfig
    from toolchain.jobs.onnx_files import export_onnx
    from toolchain.models.yolo import load_model

    out = tmp_path_factory.mktemp("trt") / "tiny.onnx"
    return export_onnx(load_model(tiny_checkpoint), out, ExportConfig(imgsz=64, dynamic_batch=True), precision="fp32")


@pytest.fixture(scope="module")
def qdq_onnx(gpu_stack, tmp_path_factory, tiny_checkpoint, tiny_dataset):
    from toolchain.export.onnx import ExportConfig
    from toolchain.jobs.onnx_files import export_onnx
    from toolchain.models.yolo import load_model
    from toolchain.quantization.calibration import calibrate, calibration_batches
    from toolchain.quantization.config import QuantConfig
    from toolchain.quantization.placement import quantize_model

    model = load_model(tiny_checkpoint)
    quantize_model(model, QuantConfig())
    calibrate(model, calibration_batches(str(tiny_dataset), 64, 8, 8))
    out = tmp_path_factory.mktemp("trt") / "tiny.int8.onnx"
    return export_onnx(model, out, ExportConfig(imgsz=64, dynamic_batch=True), precision="int8")


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_build_run_and_match_onnxruntime(tmp_path, request, precision):
    from base.metadata import ModelMetadata
    from deploy.engine.build import engine_from_onnx
    from deploy.engine.config import EngineConfig
    from deploy.runtime.onnxruntime import OnnxRuntimeRunner

    onnx = request.getfixturevalue("qdq_onnx" if precision == "int8" else "float_onnx")
    engine = engine_from_onnx(onnx, EngineConfig(precision=precision, min_batch=1, opt_batch=2, max_batch=4),
                              tmp_path / f"m.{precision}.engine")  # fmt: skip
    meta = ModelMetadata.load(engine)
    assert meta.precision == precision and meta.extra["profile"][2][0] == 4
    assert meta.extra["layers"]["layers"] > 0
    batch = np.random.default_rng(0).random((3, 3, 64, 64), dtype=np.float32)
    with create_runner(engine) as runner, OnnxRuntimeRunner(onnx) as reference:
        ours, ref = runner.infer(batch)[0], reference.infer(batch)[0]
    assert ours.shape == ref.shape
    assert np.abs(ours[:, 4:] - ref[:, 4:]).max() < 0.05  # class scores agree to INT8/FP16 accuracy


@pytest.mark.trt
@pytest.mark.gpu
def test_corrupt_or_truncated_engine(tmp_path, gpu_stack):
    bad = tmp_path / "m.int8.engine"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ToolchainError, match="corrupt or truncated"):
        create_runner(bad)
