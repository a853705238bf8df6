"""check-qdq (``deploy.qdq.rules`` and its command line) on small hand-built graphs: each rule broken once,
and a clean graph."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from base.errors import ToolchainError
from deploy.qdq.rules import check_qdq
from deploy.qdq_check import main


class _Builder:
    def __init__(self) -> None:
        self.nodes, self.inits, self.count = [], [], 0

    def const(self, value: np.ndarray, name: str | None = None) -> str:
        self.count += 1
        name = name or f"c{self.count}"
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        self.count += 1
        out = f"{op.lower()}{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{self.count}", **attrs))
        return out

    def qdq(self, x: str, scale: float, zp_dtype=np.int8) -> str:
        s, z = self.const(np.array(scale, np.float32)), self.const(np.array(0, zp_dtype))
        return self.node("DequantizeLinear", [self.node("QuantizeLinear", [x, s, z]), s, z])

    def qconv(self, x: str, cin: int = 4, cout: int = 4, per_channel: bool = True, axis: int = 0) -> str:
        w = self.const(np.ones((cout, cin, 1, 1), np.int8))
        scale = np.full(cout if per_channel else (), 0.1, np.float32)
        zp = np.zeros(cout if per_channel else (), np.int8)
        wdq = self.node("DequantizeLinear", [w, self.const(scale), self.const(zp)], axis=axis)
        return self.node("Conv", [x, wdq])

    def save(self, path, output: str) -> str:
        graph = helper.make_graph(
            self.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], self.inits,
        )  # fmt: skip
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        return str(path)


def _rules(path) -> list[str]:
    return sorted({v.rule for v in check_qdq(path).violations})


def test_clean_graph_passes(tmp_path):
    b = _Builder()
    y = b.qconv(b.qdq("x", 0.05))
    z = b.qconv(b.qdq(b.node("Relu", [y]), 0.02))
    report = check_qdq(b.save(tmp_path / "m.onnx", z))
    assert report.ok, report.summary()
    assert (report.quantized_convs, report.convs, report.quantize_nodes) == (2, 2, 2)
    assert main([str(tmp_path / "m.onnx")]) == 0


def test_uint8_zero_point_is_refused(tmp_path):
    b = _Builder()
    y = b.qconv(b.qdq("x", 0.05, zp_dtype=np.uint8))
    assert _rules(b.save(tmp_path / "m.onnx", y)) == ["int8"]


@pytest.mark.parametrize(("per_channel", "axis"), [(False, 0), (True, 1)])
def test_weight_must_be_per_channel_on_axis_0(tmp_path, per_channel, axis):
    b = _Builder()
    y = b.qconv(b.qdq("x", 0.05), per_channel=per_channel, axis=axis)
    assert _rules(b.save(tmp_path / "m.onnx", y)) == ["weight-per-channel"]


def test_quantized_conv_needs_quantized_input(tmp_path):
    b = _Builder()
    y = b.qconv("x")
    assert _rules(b.save(tmp_path / "m.onnx", y)) == ["conv-input"]


def test_concat_inputs_with_two_scales(tmp_path):
    b = _Builder()
    a = b.node("Relu", ["x"])
    c = b.node("Concat", [a, b.node("Sigmoid", ["x"])], axis=1)
    y1 = b.qconv(b.qdq(c, 0.05), cin=8)
    y2 = b.qconv(b.qdq(a, 0.07))  # the same tensor reaches another Q with another scale
    out = b.node("Concat", [y1, y2], axis=1)
    report = check_qdq(b.save(tmp_path / "m.onnx", out))
    assert [v.rule for v in report.violations] == ["one-scale"]
    assert "2 scales" in report.violations[0].message
    assert main([str(tmp_path / "m.onnx")]) == 1


def test_residual_add_needs_both_inputs_quantized_with_one_scale(tmp_path):
    b = _Builder()
    xq = b.qdq("x", 0.05)
    y = b.qconv(xq)
    added = b.node("Add", [xq, y])  # y is not behind a DQ
    out = b.qconv(b.qdq(added, 0.05))
    assert _rules(b.save(tmp_path / "a.onnx", out)) == ["residual-add"]
    b = _Builder()
    xq = b.qdq("x", 0.05)
    added = b.node("Add", [xq, b.qdq(b.qconv(xq), 0.09)])
    out = b.qconv(b.qdq(added, 0.05))
    assert _rules(b.save(tmp_path / "b.onnx", out)) == ["residual-add"]


def test_add_in_the_float_tail_is_not_a_residual(tmp_path):
    b = _Builder()
    y = b.qconv(b.qdq("x", 0.05))
    out = b.node("Add", [b.node("Sigmoid", [y]), y])
    assert check_qdq(b.save(tmp_path / "m.onnx", out)).ok


def test_dangling_q(tmp_path):
    b = _Builder()
    s, z = b.const(np.array(0.1, np.float32)), b.const(np.array(0, np.int8))
    q = b.node("QuantizeLinear", ["x", s, z])
    out = b.node("Cast", [q], to=TensorProto.FLOAT)
    assert _rules(b.save(tmp_path / "m.onnx", out)) == ["dangling", "float"]  # and no conv is quantized


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ToolchainError, match="not found"):
        check_qdq(tmp_path / "none.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(ToolchainError, match="not a readable ONNX"):
        check_qdq(tmp_path / "bad.onnx")
    assert main([str(tmp_path / "none.onnx")]) == 1


def _float_model(path) -> str:
    b = _Builder()
    y = b.node("Conv", ["x", b.const(np.ones((4, 4, 1, 1), np.float32))])
    return b.save(path, b.node("Relu", [y]))


def test_a_float_model_fails_unless_allowed(tmp_path, capsys):
    """Before: '0/1 convs quantized ... OK', exit 0, for any FP32 ONNX."""
    path = _float_model(tmp_path / "fp32.onnx")
    report = check_qdq(path)
    assert not report.ok and [v.rule for v in report.violations] == ["float"]
    assert main([path]) == 1
    out = capsys.readouterr().out
    assert "0/1 convs quantized" in out and "--allow-float" in out and "OK" not in out
    assert check_qdq(path, allow_float=True).ok
    assert main([path, "--allow-float"]) == 0


def test_json_report_path_is_checked_before_the_check(tmp_path, capsys):
    path = _float_model(tmp_path / "fp32.onnx")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([path, "--allow-float", "--json", str(blocker / "r.json")]) == 1
    captured = capsys.readouterr()
    assert "--json" in captured.err and str(blocker) in captured.err and "Traceback" not in captured.err
    assert captured.out == ""  # refused before any model was checked
    assert main([path, "--allow-float", "--json", str(tmp_path / "r.json")]) == 0
    assert '"rule"' not in (tmp_path / "r.json").read_text() and '"convs": 1' in (tmp_path / "r.json").read_text()
