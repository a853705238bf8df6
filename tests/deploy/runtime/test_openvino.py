"""The OpenVINO runner: INT8 results that agree with ONNX Runtime, including after a Concat."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from base.errors import ToolchainError
from deploy.runtime.onnxruntime import OnnxRuntimeRunner

pytest.importorskip("openvino")
from deploy.runtime.openvino import OpenVINORunner  # noqa: E402


def _concat_qdq_conv(path, inputs: int = 2, zero_point: np.generic | None = None) -> str:
    """x0..xn -> Concat -> Q/DQ -> Conv(int8 weights per channel): OpenVINO got this wrong unpatched
    on QAT exports (2024.6-2026.4); 2026.4.1 computes this small graph right either way."""
    rng = np.random.default_rng(0)
    cin = 16 * inputs
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "s"),
        numpy_helper.from_array(np.array(np.int8(0) if zero_point is None else zero_point), "z"),
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


@pytest.mark.parametrize("workaround", ["maximum", "requantize", "none"])
@pytest.mark.parametrize("inputs, zero_point", [(2, np.int8(0)), (3, np.int8(0)), (2, np.uint8(128))])
def test_int8_after_concat_matches_onnxruntime(tmp_path, inputs, zero_point, workaround):
    path = _concat_qdq_conv(tmp_path / "m.onnx", inputs, zero_point)
    x = np.random.default_rng(1).uniform(-0.6, 3.0, (1, 16 * inputs, 8, 8)).astype(np.float32)
    with OpenVINORunner(path, threads=1, concat_workaround=workaround) as ov_runner, OnnxRuntimeRunner(path) as ort:
        ours, ref = ov_runner.infer(x)[0], ort.infer(x)[0]
        in_float = ov_runner.remedy == "float"  # a CPU without VNNI (test_openvino_isa.py covers each ISA)
        assert ov_runner.patched == (0 if workaround == "none" or in_float else 1)
        precisions = ov_runner.conv_precisions()
        assert precisions["u8"] + precisions["i8"] == (0 if in_float else 1)  # INT8 where the CPU computes it right
    # exact, or (no VNNI: 7-bit weights) one int8 weight step of rounding: test_openvino_isa.WEIGHTS7_TOL
    tol = 0.02 if ov_runner.remedy == "weights7" else 1e-5
    assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) < tol


def test_requantize_moves_the_fake_quantize_onto_every_concat_input(tmp_path):
    import openvino as ov

    from deploy.runtime.openvino import quantize_concat_inputs

    model = ov.Core().read_model(_concat_qdq_conv(tmp_path / "m.onnx", 3))
    assert quantize_concat_inputs(model) == 1
    model.validate_nodes_and_infer_types()
    concats = [op for op in model.get_ordered_ops() if op.get_type_name() == "Concat"]
    live = [
        c for c in concats if any(t.get_node().get_type_name() != "Result" for t in c.output(0).get_target_inputs())
    ]
    fed = [c for c in live if all(c.input_value(i).get_node().get_type_name() == "FakeQuantize" for i in range(3))]
    assert len(fed) == 1
    consumers = [t.get_node().get_type_name() for t in fed[0].output(0).get_target_inputs()]
    assert "FakeQuantize" not in consumers


def test_layer_times_throughput_hint_and_async_runs(tmp_path):
    path = _concat_qdq_conv(tmp_path / "m.onnx")
    x = np.zeros((1, 32, 8, 8), np.float32)
    with OpenVINORunner(path, threads=1, perf_count=True) as runner:
        runner.infer(x)
        layers = runner.layer_times()
        assert "Convolution" in {layer.node_type for layer in layers}
        assert all(layer.ms >= 0 for layer in layers) and runner.streams == 1
    with OpenVINORunner(path, threads=2, hint="THROUGHPUT") as runner:
        assert runner.requests >= runner.streams >= 1
        assert runner.time_async(x, 8) > 0
        with pytest.raises(ToolchainError, match="perf_count=True"):
            runner.layer_times()


def test_precision_hint_and_missing_file(tmp_path):
    path = _concat_qdq_conv(tmp_path / "m.onnx")
    with pytest.raises(ToolchainError, match="precision must be one of"):
        OpenVINORunner(path, precision="int4")
    with pytest.raises(ToolchainError, match="hint must be one of"):
        OpenVINORunner(path, hint="FAST")
    with pytest.raises(ToolchainError, match="concat_workaround must be one of"):
        OpenVINORunner(path, concat_workaround="skip")
    with pytest.raises(ToolchainError, match="not found"):
        OpenVINORunner(tmp_path / "none.onnx")
    from deploy.cpu import native_precisions

    with OpenVINORunner(path, precision="bf16") as runner:  # f32 where bf16 is not native (AVX2: NaN with INT8)
        want = "bf16" if "bf16" in native_precisions() else "f32"
        assert runner.name == f"openvino-{want}" and runner.input_shape == (1, 32, 8, 8)
