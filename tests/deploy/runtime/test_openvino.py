"""The OpenVINO runner: INT8 results that agree with ONNX Runtime, including after a Concat."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploy.errors import ToolchainError
from deploy.runtime.onnxruntime import OnnxRuntimeRunner

pytest.importorskip("openvino")
from deploy.runtime.openvino import OpenVINORunner  # noqa: E402


def _concat_qdq_conv(path, inputs: int = 2) -> str:
    """x0..xn -> Concat -> Q/DQ -> Conv(int8 weights per channel): OpenVINO got this wrong unpatched."""
    rng = np.random.default_rng(0)
    cin = 16 * inputs
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.int8), "z"),
        numpy_helper.from_array(rng.integers(-127, 128, (8, cin, 1, 1)).astype(np.int8), "w"),
        numpy_helper.from_array(np.full(8, 0.01, np.float32), "ws"),
        numpy_helper.from_array(np.zeros(8, np.int8), "wz"),
    ]
    names = [f"x{i}" for i in range(inputs)]
    nodes = [
        helper.make_node("Concat", names, ["c"], axis=1),
        helper.make_node("QuantizeLinear", ["c", "s", "z"], ["cq"]),
        helper.make_node("DequantizeLinear", ["cq", "s", "z"], ["cd"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("Conv", ["cd", "wd"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits,
    )  # fmt: skip
    # one input, split in the graph, so the runners' single-input interface applies
    split = numpy_helper.from_array(np.full(inputs, 16, np.int64), "split")
    graph.initializer.append(split)
    graph.node.insert(0, helper.make_node("Split", ["x", "split"], names, axis=1))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("inputs", [2, 3])
def test_int8_after_concat_matches_onnxruntime(tmp_path, inputs):
    path = _concat_qdq_conv(tmp_path / "m.onnx", inputs)
    x = np.random.default_rng(1).uniform(-0.6, 3.0, (1, 16 * inputs, 8, 8)).astype(np.float32)
    with OpenVINORunner(path, threads=1) as ov_runner, OnnxRuntimeRunner(path) as ort_runner:
        ours, ref = ov_runner.infer(x)[0], ort_runner.infer(x)[0]
        assert ov_runner.patched == 1
        assert ov_runner.conv_precisions()["u8"] == 1  # still an INT8 convolution
    assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) < 1e-5


def test_precision_hint_and_missing_file(tmp_path):
    path = _concat_qdq_conv(tmp_path / "m.onnx")
    with pytest.raises(ToolchainError, match="precision must be one of"):
        OpenVINORunner(path, precision="int4")
    with pytest.raises(ToolchainError, match="not found"):
        OpenVINORunner(tmp_path / "none.onnx")
    with OpenVINORunner(path, precision="bf16") as runner:
        assert runner.name == "openvino-bf16" and runner.input_shape == (1, 32, 8, 8)
