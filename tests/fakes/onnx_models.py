"""Tiny ONNX models built in code for the TensorRT paths: a float conv, its FP16-typed twin, a Q/DQ conv.

Each is ``images`` (N x 3 x 16 x 16, float32; N dynamic or 1) -> Conv 3->4 -> Sigmoid -> ``output0``
(float32). The FP16 one casts to float16 around the conv, as an FP16 export keeps float32 I/O; the
Q/DQ one quantizes the activation and the weight per tensor (int8, zero point 0), like our exports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZE = 16


def _io(dynamic: bool) -> tuple:
    batch = "batch" if dynamic else 1
    return (helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, SIZE, SIZE]),
            helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, 4, SIZE, SIZE]))  # fmt: skip


def _weights(dtype=np.float32) -> list:
    rng = np.random.default_rng(0)
    return [numpy_helper.from_array(rng.normal(0, 0.2, (4, 3, 3, 3)).astype(dtype), "w"),
            numpy_helper.from_array(np.zeros(4, dtype), "b")]  # fmt: skip


def _save(nodes: list, inits: list, path: Path, dynamic: bool) -> Path:
    inp, out = _io(dynamic)
    model = helper.make_model(helper.make_graph(nodes, "tiny", [inp], [out], inits),
                              opset_imports=[helper.make_opsetid("", 13)])  # fmt: skip
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def float_onnx(path: Path, dynamic: bool = True) -> Path:
    conv = helper.make_node("Conv", ["images", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv")
    return _save([conv, helper.make_node("Sigmoid", ["c"], ["output0"], name="sigmoid")], _weights(), path, dynamic)


def fp16_onnx(path: Path, dynamic: bool = True) -> Path:
    nodes = [helper.make_node("Cast", ["images"], ["x16"], to=TensorProto.FLOAT16, name="cast_in"),
             helper.make_node("Conv", ["x16", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Sigmoid", ["c"], ["s"], name="sigmoid"),
             helper.make_node("Cast", ["s"], ["output0"], to=TensorProto.FLOAT, name="cast_out")]  # fmt: skip
    return _save(nodes, _weights(np.float16), path, dynamic)


def qdq_onnx(path: Path, dynamic: bool = True) -> Path:
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.2, (4, 3, 3, 3))
    w_scale = np.float32(np.abs(w).max() / 127)
    inits = [numpy_helper.from_array(np.clip(np.round(w / w_scale), -127, 127).astype(np.int8), "w_q"),
             numpy_helper.from_array(np.array(w_scale, np.float32), "w_s"),
             numpy_helper.from_array(np.array(1 / 127, np.float32), "x_s"),
             numpy_helper.from_array(np.array(0, np.int8), "zp"),
             numpy_helper.from_array(np.zeros(4, np.float32), "b")]  # fmt: skip
    nodes = [helper.make_node("QuantizeLinear", ["images", "x_s", "zp"], ["x_q"], name="quant_in"),
             helper.make_node("DequantizeLinear", ["x_q", "x_s", "zp"], ["x_dq"], name="dequant_in"),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "zp"], ["w_dq"], name="dequant_w"),
             helper.make_node("Conv", ["x_dq", "w_dq", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Sigmoid", ["c"], ["output0"], name="sigmoid")]  # fmt: skip
    return _save(nodes, inits, path, dynamic)


def detector_onnx(path: Path, dynamic: bool = True, classes: int = 2, anchors: int = 8) -> Path:
    """A detector-shaped model: ``images`` -> ``output0`` of N x (4 + classes) x anchors, like YOLOv8's."""
    batch = "batch" if dynamic else 1
    channels = (4 + classes) * anchors
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.2, (channels, 3, 1, 1)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([-1, 4 + classes, anchors], np.int64), "shape")]  # fmt: skip
    nodes = [helper.make_node("GlobalAveragePool", ["images"], ["g"], name="pool"),
             helper.make_node("Conv", ["g", "w"], ["c"], name="head"),
             helper.make_node("Reshape", ["c", "shape"], ["output0"], name="reshape")]  # fmt: skip
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, SIZE, SIZE])
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, 4 + classes, anchors])
    model = helper.make_model(helper.make_graph(nodes, "detector", [inp], [out], inits),
                              opset_imports=[helper.make_opsetid("", 13)])  # fmt: skip
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
