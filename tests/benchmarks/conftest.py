"""Tiny ONNX models for the benchmark tests: an FP32 conv stack and its QDQ twin, dynamic batch, 32x32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.deploy.bench.conftest import tiny_run  # noqa: F401  (the engine benchmark's run: make bench's step)


def _conv_stack(path: Path, qdq: bool) -> Path:
    """x -> Conv 3->8 -> SiLU -> Concat(with itself) -> Conv 16->4, optionally with Q/DQ before each conv."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.3, (4, 16, 1, 1)).astype(np.float32)
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "s"), numpy_helper.from_array(np.int8(0), "z")]
    nodes = []

    def quantized(name: str) -> str:
        if not qdq:
            return name
        nodes.append(helper.make_node("QuantizeLinear", [name, "s", "z"], [name + "_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [name + "_q", "s", "z"], [name + "_dq"]))
        return name + "_dq"

    for name, w in (("w1", w1), ("w2", w2)):
        if qdq:
            scale = np.abs(w).reshape(len(w), -1).max(1) / 127
            q = np.round(w / scale[:, None, None, None]).astype(np.int8)
            inits += [numpy_helper.from_array(q, name + "_i8"), numpy_helper.from_array(scale.astype(np.float32), name + "_s"),
                      numpy_helper.from_array(np.zeros(len(w), np.int8), name + "_z")]  # fmt: skip
            nodes.append(helper.make_node("DequantizeLinear", [name + "_i8", name + "_s", name + "_z"], [name], axis=0))
        else:
            inits.append(numpy_helper.from_array(w, name))
    nodes += [helper.make_node("Conv", [quantized("x"), "w1"], ["c1"], pads=[1, 1, 1, 1]),
              helper.make_node("Sigmoid", ["c1"], ["sg"]), helper.make_node("Mul", ["c1", "sg"], ["a1"]),
              helper.make_node("Concat", ["a1", "a1"], ["cat"], axis=1)]  # fmt: skip
    nodes.append(helper.make_node("Conv", [quantized("cat"), "w2"], ["y"]))
    graph = helper.make_graph(
        nodes, "stack", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(fp32.onnx, int8.onnx)``: the same tiny model without and with Q/DQ."""
    folder = tmp_path_factory.mktemp("tiny_pair")
    return _conv_stack(folder / "fp32.onnx", False), _conv_stack(folder / "int8.onnx", True)
