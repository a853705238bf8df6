"""A tiny ``make qat``-style run folder for the engine benchmark: fp32.onnx, fp32.fp16.onnx, ptq.int8.onnx and
qat.int8.onnx of a detector-shaped model (YOLOv8's output layout) with the tiny dataset's classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from base.dataset import load_data_yaml
from tests.fakes.onnx_models import detector_onnx


def qdq_detector(src: Path, dst: Path, input_scale: float) -> Path:
    """``src`` with Q/DQ on its conv's input and weight (int8, per tensor, zero point 0), as our exports have."""
    model = onnx.load(str(src))
    graph = model.graph
    w = next(numpy_helper.to_array(t) for t in graph.initializer if t.name == "w")
    w_scale = np.float32(np.abs(w).max() / 127)
    kept = [t for t in graph.initializer if t.name != "w"]
    del graph.initializer[:]
    graph.initializer.extend([*kept, numpy_helper.from_array(np.round(w / w_scale).astype(np.int8), "w_q"),
                              numpy_helper.from_array(np.array(w_scale, np.float32), "w_s"),
                              numpy_helper.from_array(np.array(input_scale, np.float32), "x_s"),
                              numpy_helper.from_array(np.array(0, np.int8), "zp")])  # fmt: skip
    conv = next(n for n in graph.node if n.op_type == "Conv")
    activation = conv.input[0]
    conv.input[:] = ["x_dq", "w_dq", *conv.input[2:]]
    qdq = [helper.make_node("QuantizeLinear", [activation, "x_s", "zp"], ["x_q"], name="quant_in"),
           helper.make_node("DequantizeLinear", ["x_q", "x_s", "zp"], ["x_dq"], name="dequant_in"),
           helper.make_node("DequantizeLinear", ["w_q", "w_s", "zp"], ["w_dq"], name="dequant_w")]  # fmt: skip
    i = list(graph.node).index(conv)
    nodes = [*graph.node[:i], *qdq, *graph.node[i:]]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return dst


def fp16_detector(src: Path, dst: Path) -> Path:
    """``src`` computing in float16 inside, float32 at its input and output (what an FP16 export keeps)."""
    model = onnx.load(str(src))
    graph = model.graph
    for t in graph.initializer:
        if t.data_type == TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    for node in graph.node:
        node.input[:] = ["x16" if i == "images" else i for i in node.input]
        node.output[:] = ["y16" if o == "output0" else o for o in node.output]
    nodes = [helper.make_node("Cast", ["images"], ["x16"], to=TensorProto.FLOAT16, name="cast_in"), *graph.node,
             helper.make_node("Cast", ["y16"], ["output0"], to=TensorProto.FLOAT, name="cast_out")]  # fmt: skip
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return dst


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Path) -> Path:
    """A run folder with the four files ``make qat`` writes, 16x16 input, dynamic batch."""
    run = tmp_path_factory.mktemp("bench") / "run"
    run.mkdir()
    classes = len(load_data_yaml(tiny_dataset).names)
    fp32 = detector_onnx(run / "fp32.onnx", dynamic=True, classes=classes)
    fp16_detector(fp32, run / "fp32.fp16.onnx")
    qdq_detector(fp32, run / "ptq.int8.onnx", 1 / 127)
    qdq_detector(fp32, run / "qat.int8.onnx", 1 / 100)
    return run
