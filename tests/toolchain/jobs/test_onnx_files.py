"""Writing ONNX files: an export beside its sidecar, atomically, and nothing when the stage refuses."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from base.errors import ToolchainError
from base.metadata import ModelMetadata
from deploy.runtime.onnxruntime import OnnxRuntimeRunner
from toolchain.export.onnx import ExportConfig
from toolchain.jobs.onnx_files import export_onnx
from toolchain.models.torch_runner import TorchRunner
from toolchain.models.yolo import load_model


@pytest.mark.parametrize("dynamic_batch", [False, True])
def test_onnx_matches_pytorch_and_carries_metadata(tmp_path, tiny_checkpoint, dynamic_batch):
    model = load_model(tiny_checkpoint)
    path = export_onnx(model, tmp_path / "m.onnx", ExportConfig(imgsz=64, dynamic_batch=dynamic_batch))
    batch = np.random.default_rng(0).random((2 if dynamic_batch else 1, 3, 64, 64), dtype=np.float32)
    with OnnxRuntimeRunner(path) as ort_runner, TorchRunner(model, 64) as torch_runner:
        (ours,), (ref,) = ort_runner.infer(batch), torch_runner.infer(batch)
        assert ort_runner.input_shape == ((None if dynamic_batch else 1), 3, 64, 64)
    assert ours.shape == (batch.shape[0], 14, 84)  # 4 box + 10 classes, 8x8 + 4x4 + 2x2 anchors
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-3)
    meta = ModelMetadata.load(path)
    assert meta.names[0] == "no_entry" and meta.imgsz == (64, 64) and meta.stride == 32
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["precision"] == "fp32" and props["imgsz"] == "[64, 64]"  # ultralytics' format
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.json"]  # nothing half-written


def test_an_int8_onnx_without_quantized_convs_is_not_written(tmp_path, tiny_checkpoint):
    from toolchain.quantization.config import QuantConfig
    from toolchain.quantization.placement import quantize_model
    from toolchain.quantization.quantized_model import set_quantizers_enabled

    with pytest.raises(ToolchainError, match=r"m\.int8\.onnx: an INT8 ONNX would hold no quantized conv \(0/64\)"):
        export_onnx(load_model(tiny_checkpoint), tmp_path / "m.int8.onnx", ExportConfig(imgsz=64), "int8")
    model = load_model(tiny_checkpoint)
    quantize_model(model, QuantConfig())  # placed but never calibrated: every quantizer passes values through
    with pytest.raises(ToolchainError, match="no quantized conv"):
        export_onnx(model, tmp_path / "q.int8.onnx", ExportConfig(imgsz=64, simplify=False), "int8")
    set_quantizers_enabled(model, False)
    with pytest.raises(ToolchainError, match="no quantized conv"):
        export_onnx(model, tmp_path / "q.int8.onnx", ExportConfig(imgsz=64, simplify=False), "int8")
    assert list(tmp_path.iterdir()) == []  # nothing under the final names, no temporary left
