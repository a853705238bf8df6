"""Engine build logic that needs neither TensorRT nor a GPU: naming, profiles, INT8 source, compatibility."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from base.errors import ToolchainError
from deploy.engine.config import (
    EngineConfig,
    check_engine_compatible,
    check_int8_source,
    engine_path,
    file_sha256,
    is_qdq,
    profile_shapes,
)


def _onnx(path: Path, qdq: bool) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    inits = []
    if qdq:
        inits = [
            numpy_helper.from_array(np.array(0.1, np.float32), "s"),
            numpy_helper.from_array(np.array(0, np.int8), "z"),
        ]
        nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]  # fmt: skip
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)  # fmt: skip
    onnx.save(helper.make_model(graph), str(path))
    return path


@pytest.mark.parametrize(
    ("onnx_name", "precision", "expected"),
    [("m.onnx", "fp16", "m.fp16.engine"), ("m.int8.onnx", "int8", "m.int8.engine"), ("best.onnx", "fp32", "best.fp32.engine"),
     ("qat.int8.onnx", "fp16", "qat.fp16.engine")],
)  # fmt: skip
def test_engine_file_naming(onnx_name, precision, expected):
    assert engine_path(Path("runs/x") / onnx_name, precision) == Path("runs/x") / expected
    assert engine_path(onnx_name, precision, "/cache").name == expected


def test_profile_shapes():
    cfg = EngineConfig(min_batch=1, opt_batch=4, max_batch=8)
    assert profile_shapes(("batch", 3, 640, 640), cfg) == ((1, 3, 640, 640), (4, 3, 640, 640), (8, 3, 640, 640))
    assert profile_shapes((-1, 3, 384, 384), cfg)[2] == (8, 3, 384, 384)
    assert profile_shapes((1, 3, 640, 640), EngineConfig()) is None  # static batch: no profile
    with pytest.raises(ToolchainError, match="static batch of 1; export it with --dynamic-batch"):
        profile_shapes((1, 3, 640, 640), cfg)
    with pytest.raises(ToolchainError, match="only the batch dimension may be dynamic"):
        profile_shapes(("batch", 3, "h", 640), cfg)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"precision": "int4"}, "precision must be one of"), ({"min_batch": 4, "opt_batch": 2}, "min_batch <= opt_batch"),
     ({"workspace_gib": 0}, "positive")],
)  # fmt: skip
def test_bad_engine_config(kwargs, match):
    with pytest.raises(ToolchainError, match=match):
        EngineConfig(**kwargs)


def test_int8_source(tmp_path):
    qdq, plain = _onnx(tmp_path / "q.onnx", True), _onnx(tmp_path / "p.onnx", False)
    assert is_qdq(qdq) and not is_qdq(plain)
    assert check_int8_source(qdq, EngineConfig(precision="int8")) == "qdq"
    assert check_int8_source(plain, EngineConfig(precision="fp16")) == "none"
    (tmp_path / "calib").mkdir()
    assert (
        check_int8_source(plain, EngineConfig(precision="int8", calib_images=str(tmp_path / "calib"))) == "calibration"
    )
    with pytest.raises(ToolchainError, match="INT8 needs either Q/DQ nodes .* or calibration images"):
        check_int8_source(plain, EngineConfig(precision="int8"))


def test_engine_from_another_tensorrt_or_gpu_is_refused(tmp_path):
    built = {"tensorrt": "8.5.2.2", "compute_capability": "8.7", "gpu": "Orin", "precision": "int8"}
    check_engine_compatible("m.engine", built, "8.5.2.2", "8.7")
    with pytest.raises(ToolchainError, match="built with TensorRT 8.5.2.2, this machine has 10.3.0.*rebuild"):
        check_engine_compatible("m.engine", built, "10.3.0", "8.7")
    with pytest.raises(ToolchainError, match="compute capability 8.7 \\(Orin\\), this GPU is 9.0"):
        check_engine_compatible("m.engine", built, "8.5.2.2", "9.0")


def test_sha256(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    assert file_sha256(tmp_path / "a") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
