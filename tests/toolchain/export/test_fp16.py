"""The float16 ONNX variant: float16 inside, float32 IO and Q/DQ scales, outputs and mAP close to FP32 on
ONNX Runtime, a sidecar that says what it is, and clear refusals."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from base.dataset import load_data_yaml, load_split
from base.errors import ToolchainError
from base.metadata import ModelMetadata
from deploy.evaluate import evaluate
from deploy.runtime.onnxruntime import OnnxRuntimeRunner
from toolchain.export.fp16 import QDQ_OPS, Fp16Config, fp16_model_from_onnx, fp16_path
from toolchain.export.onnx import ExportConfig
from toolchain.jobs.fp16_onnx import fp16_onnx_from_onnx
from toolchain.jobs.onnx_files import export_onnx
from toolchain.models.yolo import load_model

IMGSZ = 64


def float_types(model: onnx.ModelProto) -> dict[str, set[str]]:
    """Element types of the float initializers and of the graph's inputs and outputs."""
    name = TensorProto.DataType.Name
    inits = {
        name(t.data_type) for t in model.graph.initializer if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)
    }
    io = {name(v.type.tensor_type.elem_type) for v in [*model.graph.input, *model.graph.output]}
    return {"initializers": inits, "io": io}


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory, tiny_checkpoint):
    folder = tmp_path_factory.mktemp("fp16")
    return export_onnx(load_model(tiny_checkpoint), folder / "m.onnx", ExportConfig(imgsz=IMGSZ))


@pytest.fixture(scope="module")
def fp16_onnx(fp32_onnx):
    return fp16_onnx_from_onnx(fp32_onnx)


def test_names_of_the_variant(tmp_path):
    assert fp16_path(tmp_path / "m.onnx") == tmp_path / "m.fp16.onnx"
    assert fp16_path(tmp_path / "m.fp32.onnx") == tmp_path / "m.fp16.onnx"
    assert fp16_path(tmp_path / "m.int8.onnx") == tmp_path / "m.int8.fp16.onnx"


def test_float16_inside_float32_at_the_edges(fp32_onnx, fp16_onnx):
    assert fp16_onnx == fp32_onnx.with_name("m.fp16.onnx")
    model = onnx.load(str(fp16_onnx))
    assert float_types(onnx.load(str(fp32_onnx))) == {"initializers": {"FLOAT"}, "io": {"FLOAT"}}
    assert float_types(model) == {"initializers": {"FLOAT16"}, "io": {"FLOAT"}}
    assert fp16_onnx.stat().st_size < 0.6 * fp32_onnx.stat().st_size  # the weights really are half the bytes
    props = {p.key: p.value for p in model.metadata_props}
    assert props["precision"] == "fp16" and props["imgsz"] == f"[{IMGSZ}, {IMGSZ}]"
    meta = ModelMetadata.load(fp16_onnx)
    assert meta.precision == "fp16" and meta.names == ModelMetadata.load(fp32_onnx).names
    assert meta.extra["float_type"] == "float16" and meta.extra["fp16"]["converter"].startswith("onnxconverter-common")


def test_outputs_match_fp32_on_onnx_runtime(fp32_onnx, fp16_onnx):
    batch = np.random.default_rng(0).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32)
    with OnnxRuntimeRunner(fp32_onnx) as a, OnnxRuntimeRunner(fp16_onnx) as b:
        (ref,), (half,) = a.infer(batch), b.infer(batch)
    assert half.dtype == np.float32 and half.shape == ref.shape
    # boxes in pixels (float16 spacing is 1/32 px at 32-64 px) and class scores in [0, 1]
    np.testing.assert_allclose(half[:, :4], ref[:, :4], atol=0.25)
    np.testing.assert_allclose(half[:, 4:], ref[:, 4:], atol=2e-3)
    assert np.abs(half - ref).max() > 0  # it did compute in float16


def test_map_matches_fp32_on_synthetic_images(fp32_onnx, fp16_onnx, tiny_dataset):
    # an untrained model: its mAP is near zero, so this checks that the two score alike, box for box
    split = load_split(load_data_yaml(tiny_dataset), "val")
    with OnnxRuntimeRunner(fp32_onnx) as a, OnnxRuntimeRunner(fp16_onnx) as b:
        ref, half = evaluate(a, split), evaluate(b, split)
    assert abs(half.map50_95 - ref.map50_95) <= 0.01 and abs(half.map50 - ref.map50) <= 0.01


def test_qdq_source_keeps_int8_and_float32_scales(tmp_path, tiny_checkpoint, tiny_dataset):
    from toolchain.quantization.calibration import calibrate, calibration_batches
    from toolchain.quantization.config import QuantConfig
    from toolchain.quantization.placement import quantize_model

    model = load_model(tiny_checkpoint)
    quantize_model(model, QuantConfig())
    calibrate(model, calibration_batches(str(tiny_dataset), imgsz=IMGSZ, num_images=8, batch=8))
    qdq = export_onnx(model, tmp_path / "m.int8.onnx", ExportConfig(IMGSZ), "int8")
    out = fp16_onnx_from_onnx(qdq)
    src, half = onnx.load(str(qdq)), onnx.load(str(out))
    assert out.name == "m.int8.fp16.onnx" and ModelMetadata.load(out).precision == "int8"
    count = lambda m: sum(n.op_type in QDQ_OPS for n in m.graph.node)  # noqa: E731
    assert count(half) == count(src) > 0
    inits = {t.name: t for t in half.graph.initializer}
    scales = [n.input[1] for n in half.graph.node if n.op_type in QDQ_OPS]
    assert {TensorProto.DataType.Name(inits[s].data_type) for s in scales if s in inits} == {"FLOAT"}
    assert "FLOAT16" in float_types(half)["initializers"]  # the float tail is float16
    batch = np.random.default_rng(1).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32)
    with OnnxRuntimeRunner(qdq) as a, OnnxRuntimeRunner(out) as b:
        (ref,), (got,) = a.infer(batch), b.infer(batch)
    np.testing.assert_allclose(got[:, 4:], ref[:, 4:], atol=0.02)


def test_refusals(tmp_path, fp16_onnx):
    with pytest.raises(ToolchainError, match="ONNX not found"):
        fp16_onnx_from_onnx(tmp_path / "none.onnx")
    with pytest.raises(ToolchainError, match="already holds float16"):
        fp16_onnx_from_onnx(fp16_onnx, tmp_path / "again.onnx")
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(ToolchainError, match="not a readable ONNX"):
        fp16_onnx_from_onnx(tmp_path / "text.onnx")
    with pytest.raises(ToolchainError, match="max_finite_val"):
        Fp16Config(max_finite_val=1e6)
    assert not (tmp_path / "again.onnx").exists() and not list(tmp_path.glob("*.tmp*"))


@pytest.mark.slow
def test_map_of_the_fp16_baseline_on_road_signs(tmp_path, shared_model, road_signs):
    """One measurement (printed, and written as JSON): FP32 vs FP16 ONNX on ONNX Runtime through our evaluator."""
    fp32 = export_onnx(load_model(shared_model), tmp_path / "rs.onnx", ExportConfig(imgsz=384))
    fp16 = fp16_onnx_from_onnx(fp32)
    split = load_split(load_data_yaml(road_signs), "val")
    with OnnxRuntimeRunner(fp32) as a, OnnxRuntimeRunner(fp16) as b:
        ref, half = evaluate(a, split), evaluate(b, split)
    numbers = {"fp32": [ref.map50_95, ref.map50], "fp16": [half.map50_95, half.map50], "images": ref.images}
    print(json.dumps(numbers))
    assert abs(half.map50_95 - ref.map50_95) <= 0.005 and abs(half.map50 - ref.map50) <= 0.005


def test_export_command_writes_the_fp16_variant_with_fp16(tmp_path, tiny_checkpoint):
    from toolchain.cli import main

    assert main(["export", "--weights", str(tiny_checkpoint), "--out", str(tmp_path / "m.onnx"), "--fp16",
                 "--imgsz", str(IMGSZ)]) == 0  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.fp16.onnx", "m.fp16.onnx.json", "m.onnx", "m.onnx.json"]
    assert float_types(onnx.load(str(tmp_path / "m.fp16.onnx")))["initializers"] == {"FLOAT16"}
    meta = ModelMetadata.load(tmp_path / "m.fp16.onnx")
    assert meta.precision == "fp16" and meta.extra["config"]["fp16"] is True
    assert ModelMetadata.load(tmp_path / "m.onnx").precision == "fp32"


def test_ptq_command_writes_the_fp16_variant_of_its_fp32_onnx(tmp_path, tiny_checkpoint, tiny_dataset):
    from toolchain.cli import main

    out = tmp_path / "t.int8.onnx"
    argv = ["ptq", "--weights", tiny_checkpoint, "--data", tiny_dataset, "--imgsz", IMGSZ, "--num-images", 4,
            "--batch", 4, "--out", out, "--fp32", "--fp16", "--quant.input.calibrator", "max"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "t.fp16.onnx", "t.fp16.onnx.json", "t.int8.onnx", "t.int8.onnx.json", "t.int8.pt", "t.onnx", "t.onnx.json",
    ]  # fmt: skip
    assert float_types(onnx.load(str(tmp_path / "t.fp16.onnx")))["initializers"] == {"FLOAT16"}
    assert ModelMetadata.load(tmp_path / "t.fp16.onnx").precision == "fp16"
    assert not any(n.op_type in QDQ_OPS for n in onnx.load(str(tmp_path / "t.fp16.onnx")).graph.node)


def test_ptq_fp16_needs_fp32(tiny_checkpoint, tiny_dataset, capsys):
    from toolchain.cli import main

    assert main(["ptq", "--weights", str(tiny_checkpoint), "--data", str(tiny_dataset), "--fp16"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: --fp16: needs fp32: true (the FP16 ONNX is converted from the FP32 one)"
    )


def test_the_stage_converts_in_memory_and_leaves_its_input(fp32_onnx):
    model = onnx.load(str(fp32_onnx))
    before = model.SerializeToString()
    half, meta = fp16_model_from_onnx(model, None, "in-memory")
    assert model.SerializeToString() == before and meta is None
    assert float_types(half) == {"initializers": {"FLOAT16"}, "io": {"FLOAT"}}
    with pytest.raises(ToolchainError, match=r"^in-memory: already holds float16"):
        fp16_model_from_onnx(half, None, "in-memory")
