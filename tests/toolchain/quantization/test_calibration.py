from __future__ import annotations

import numpy as np
import pytest
import torch

from base.errors import ToolchainError
from deploy.qdq.rules import check_qdq
from deploy.runtime.onnxruntime import OnnxRuntimeRunner
from toolchain.export.onnx import ExportConfig
from toolchain.jobs.onnx_files import export_onnx
from toolchain.models.torch_runner import TorchRunner
from toolchain.models.yolo import load_model
from toolchain.quantization.calibration import calibrate, calibrated_model, calibration_batches
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.placement import quantize_model
from toolchain.quantization.quantized_model import quantization_disabled, quantizers


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def calibrated(tiny_checkpoint, tiny_dataset):
    model = load_model(tiny_checkpoint)
    quantize_model(model, QuantConfig())
    calibrate(model, calibration_batches(str(tiny_dataset), imgsz=64, num_images=16, batch=8))
    return model


def test_every_quantizer_is_calibrated(calibrated):
    qs = quantizers(calibrated)
    assert qs and all(q.is_calibrated for q in qs)
    assert len(qs) < 2 * 57  # shared quantizers are counted once


def test_qdq_onnx_matches_fake_quant_and_passes_check(tmp_path, calibrated, tiny_checkpoint, tiny_dataset):
    qdq = export_onnx(calibrated, tmp_path / "m.int8.onnx", ExportConfig(imgsz=64), precision="int8")
    fp32 = export_onnx(load_model(tiny_checkpoint), tmp_path / "m.onnx", ExportConfig(imgsz=64))
    report = check_qdq(qdq)
    assert report.ok, report.summary()
    assert report.quantized_convs == 57 and report.convs == 64
    assert qdq.stat().st_size <= 0.30 * fp32.stat().st_size
    batch = calibration_batches(str(tiny_dataset), imgsz=64, num_images=4, batch=4, split="val")[0]
    with OnnxRuntimeRunner(qdq) as ort_runner, TorchRunner(calibrated, 64) as torch_runner:
        ours = np.concatenate([ort_runner.infer(b[None])[0] for b in batch])
        ref = torch_runner.infer(batch)[0]
    assert rel_l2(ours, ref) <= 1e-3
    first = calibrated.model[0].conv
    with torch.no_grad():
        quantized = first(torch.from_numpy(batch))
        with quantization_disabled(calibrated):
            exact = first(torch.from_numpy(batch))
    assert 1e-4 < rel_l2(quantized.numpy(), exact.numpy()) < 0.05  # fake-quant changes numbers, a little


def test_onnx_int8_weights_are_bit_exact_with_fake_quant(tmp_path, calibrated):
    import copy

    import onnx
    from onnx import numpy_helper

    from toolchain.quantization.modules import QuantConv2d
    from toolchain.quantization.quantized_model import fold_batchnorm

    path = export_onnx(calibrated, tmp_path / "m.int8.onnx", ExportConfig(imgsz=64), precision="int8")
    graph = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    exported = [
        inits[n.input[0]] * inits[n.input[1]].reshape(-1, 1, 1, 1)
        for n in graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].ndim == 4
    ]
    folded = copy.deepcopy(calibrated)
    fold_batchnorm(folded)
    checked = 0
    for name, module in folded.named_modules():
        if isinstance(module, QuantConv2d):
            with torch.no_grad():
                ref = module.weight_quantizer(module.weight).numpy()
            same_shape = [w for w in exported if w.shape == ref.shape]
            ours = min(same_shape, key=lambda w: np.abs(w - ref).max())
            np.testing.assert_array_equal(ours, ref, err_msg=name)  # ties round as torch does
            checked += 1
    assert checked == 57


def test_export_refuses_nothing_silently_for_sub_8_bit(tmp_path, tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    quantize_model(model, QuantConfig.from_dict({"target": "generic", "input": {"num_bits": 4, "calibrator": "max"}}))
    calibrate(model, [np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)])
    with pytest.raises(ToolchainError, match=r"8-bit quantizers.*\[4\] bits"):
        export_onnx(model, tmp_path / "m.onnx", ExportConfig(imgsz=64), precision="int4")
    model.eval()
    assert model(torch.zeros(1, 3, 64, 64))[0].shape == (1, 14, 84)  # 4-bit simulation still runs


def test_calibrated_model_is_a_calibrated_copy(tiny_checkpoint, tiny_dataset):
    model = load_model(tiny_checkpoint)
    batches = calibration_batches(str(tiny_dataset), imgsz=64, num_images=8, batch=4)
    student, placement = calibrated_model(model, QuantConfig(), batches)
    assert len(placement.quantized) == 57 and all(q.is_calibrated for q in quantizers(student))
    assert quantizers(model) == []  # the FP32 model is left as it was (QAT keeps it as the teacher)
    with pytest.raises(ToolchainError, match="skip every one of the 64 convs"):
        calibrated_model(model, QuantConfig.from_dict({"overrides": [{"pattern": ".*", "skip": True}]}), batches)
