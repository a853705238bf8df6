"""The export stage: a model to an in-memory ONNX with its sidecar, nothing written (the files are
``toolchain.jobs.onnx_files``'s, tested in tests/toolchain/jobs/test_onnx_files.py)."""

from __future__ import annotations

import onnx
import pytest
import torch

from base.errors import ToolchainError
from toolchain.export.onnx import (
    INPUT_NAME,
    OUTPUT_NAME,
    ExportConfig,
    ExportedOnnx,
    onnx_model_from_torch,
    quantized_convs,
)
from toolchain.models.yolo import load_model
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.placement import quantize_model


def test_the_stage_returns_the_onnx_and_its_sidecar_and_writes_nothing(tmp_path, monkeypatch, tiny_checkpoint):
    monkeypatch.chdir(tmp_path)
    exported = onnx_model_from_torch(load_model(tiny_checkpoint), ExportConfig(imgsz=64), source="tiny.pt")
    assert isinstance(exported, ExportedOnnx) and list(tmp_path.iterdir()) == []
    onnx.checker.check_model(exported.model)
    graph = exported.model.graph
    assert [i.name for i in graph.input] == [INPUT_NAME] and [o.name for o in graph.output] == [OUTPUT_NAME]
    assert quantized_convs(exported.model) == (0, 64)
    meta = exported.metadata
    assert meta.precision == "fp32" and meta.imgsz == (64, 64) and meta.source == "tiny.pt"
    props = {p.key: p.value for p in exported.model.metadata_props}
    assert props == meta.onnx_props(1)


def test_the_stage_names_its_label_when_it_refuses_an_int8_model(tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    quantize_model(model, QuantConfig())  # placed but never calibrated: nothing is quantized
    with pytest.raises(ToolchainError, match=r"^out/q\.int8\.onnx: an INT8 ONNX would hold no quantized conv"):
        onnx_model_from_torch(model, ExportConfig(imgsz=64, simplify=False), "int8", label="out/q.int8.onnx")


def test_export_leaves_the_model_unchanged(tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    onnx_model_from_torch(model, ExportConfig(imgsz=64, simplify=False))
    assert model.model[-1].export is False
    out = model(torch.zeros(1, 3, 64, 64))
    assert isinstance(out, tuple)  # eval mode: (decoded, raw) as before


@pytest.mark.parametrize(("kwargs", "match"), [({"opset": 11}, "opset"), ({"imgsz": 100}, "multiple")])
def test_bad_export_config(kwargs, match):
    with pytest.raises(ToolchainError, match=match):
        ExportConfig(**kwargs)
