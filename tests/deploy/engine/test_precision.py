"""The engine's precision is decided from the ONNX's own types and what the TensorRT version allows."""

from __future__ import annotations

import pytest

from base.errors import ToolchainError
from deploy.engine.build import build_parser, config_from_args
from deploy.engine.config import EngineConfig
from deploy.engine.precision import OnnxTypes, fp16_onnx_path, plan_build
from deploy.engine.trt import TrtFeatures
from tests.fakes.onnx_models import float_onnx, fp16_onnx, qdq_onnx

TRT = {
    "8.6": TrtFeatures("8.6.1", explicit_batch_flag=True, strongly_typed=False, precision_flags=True, calibrators=True,
                       bindings_api=False),
    "10.3": TrtFeatures("10.3.0", explicit_batch_flag=False, strongly_typed=True, precision_flags=True,
                        calibrators=True, bindings_api=False),
    "11.4": TrtFeatures("11.4.0.106", explicit_batch_flag=False, strongly_typed=True, precision_flags=False,
                        calibrators=False, bindings_api=False),
}  # fmt: skip


@pytest.fixture()
def onnx(tmp_path):
    return {"qdq": qdq_onnx(tmp_path / "m.int8.onnx"), "fp16": fp16_onnx(tmp_path / "m.fp16.onnx"),
            "fp32": float_onnx(tmp_path / "m.onnx")}  # fmt: skip


def _plan(onnx_path, version, **cfg):
    return plan_build(onnx_path, EngineConfig(**cfg), OnnxTypes.read(onnx_path), TRT[version])


@pytest.mark.parametrize(("version", "strongly_typed", "flags"), [("8.6", False, ("INT8", "FP16")), ("10.3", True, ()),
                                                                  ("11.4", True, ())])  # fmt: skip
def test_int8_from_qdq_is_strongly_typed_from_10(onnx, version, strongly_typed, flags):
    plan = _plan(onnx["qdq"], version, precision="int8")
    assert (plan.precision, plan.strongly_typed, plan.flags, plan.int8_source) == ("int8", strongly_typed, flags, "qdq")


@pytest.mark.parametrize("version", list(TRT))
def test_fp16_from_an_fp16_onnx(onnx, version):
    plan = _plan(onnx["fp16"], version, precision="fp16")
    assert plan.precision == "fp16" and plan.strongly_typed == (version != "8.6")
    assert plan.flags == (("FP16",) if version == "8.6" else ())


def test_fp16_from_an_fp32_onnx_needs_the_fp16_onnx_on_11(onnx, tmp_path):
    assert _plan(onnx["fp32"], "10.3", precision="fp16").flags == ("FP16",)
    with pytest.raises(ToolchainError) as err:
        _plan(onnx["fp32"], "11.4", precision="fp16")
    assert f"build from {tmp_path / 'm.fp16.onnx'}" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ToolchainError, match="needs FP16 types in the ONNX"):
        _plan(onnx["fp32"], "10.3", precision="fp16", strongly_typed=True)


@pytest.mark.parametrize(("name", "precision", "match"), [
    ("qdq", "fp16", "has Q/DQ nodes, so its engine is INT8"), ("qdq", "fp32", "has Q/DQ nodes, so its engine is INT8"),
    ("fp16", "fp32", "has FP16 types, so its engine is FP16"),
])  # fmt: skip
@pytest.mark.parametrize("version", list(TRT))
def test_a_precision_the_onnx_cannot_make_is_refused(onnx, version, name, precision, match):
    with pytest.raises(ToolchainError, match=match):
        _plan(onnx[name], version, precision=precision)


def test_calibration_where_it_exists_and_the_qdq_onnx_where_it_does_not(onnx, tmp_path):
    (tmp_path / "calib").mkdir()
    cfg = {"precision": "int8", "calib_images": str(tmp_path / "calib")}
    plan = _plan(onnx["fp32"], "10.3", **cfg)
    assert (plan.precision, plan.strongly_typed, plan.flags, plan.int8_source) == ("int8", False, ("INT8", "FP16"),
                                                                                   "calibration")  # fmt: skip
    with pytest.raises(ToolchainError, match="has no INT8 calibration .* build INT8 from the QDQ ONNX instead"):
        _plan(onnx["fp32"], "11.4", **cfg)
    with pytest.raises(ToolchainError, match="INT8 needs either Q/DQ nodes"):
        _plan(onnx["fp32"], "10.3", precision="int8")


def test_fp32_and_strongly_typed_requests(onnx):
    assert _plan(onnx["fp32"], "11.4", precision="fp32").strongly_typed
    assert not _plan(onnx["fp32"], "10.3", precision="fp32").strongly_typed
    with pytest.raises(ToolchainError, match="strongly typed networks need TensorRT 10 or later, this is 8.6.1"):
        _plan(onnx["fp32"], "8.6", precision="fp32", strongly_typed=True)


def test_onnx_types_and_the_fp16_file_name(onnx, tmp_path):
    assert OnnxTypes.read(onnx["qdq"]) == OnnxTypes(qdq=True, float16=False)
    assert OnnxTypes.read(onnx["fp16"]) == OnnxTypes(qdq=False, float16=True)
    assert fp16_onnx_path(tmp_path / "best.fp32.onnx") == tmp_path / "best.fp16.onnx"
    assert fp16_onnx_path("runs/best.onnx").as_posix() == "runs/best.fp16.onnx"
    (tmp_path / "cut.onnx").write_bytes(onnx["fp32"].read_bytes()[:40])
    with pytest.raises(ToolchainError, match="cut.onnx: not a readable ONNX model"):
        OnnxTypes.read(tmp_path / "cut.onnx")


def test_the_cli_defaults_are_engine_configs():
    assert config_from_args(build_parser().parse_args(["m.onnx"])) == EngineConfig()
    assert EngineConfig().precision == "int8"
