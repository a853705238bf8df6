"""The ONNX Runtime runner: spinning intra-op threads on or off, same results either way."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploy.runtime.onnxruntime import OnnxRuntimeRunner


def _conv(path) -> str:
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("spinning", [True, False])
def test_spinning_is_set_on_the_session(tmp_path, spinning):
    path = _conv(tmp_path / "m.onnx")
    x = np.random.default_rng(1).normal(size=(1, 3, 8, 8)).astype(np.float32)
    with OnnxRuntimeRunner(path, threads=1) as reference, OnnxRuntimeRunner(path, threads=1, spinning=spinning) as runner:
        entries = runner._session.get_session_options().get_session_config_entry
        if spinning:
            with pytest.raises(Exception):  # noqa: B017 - ONNX Runtime raises its own Fail for an unset entry
                entries("session.intra_op.allow_spinning")
        else:
            assert entries("session.intra_op.allow_spinning") == "0"
        np.testing.assert_array_equal(runner.infer(x)[0], reference.infer(x)[0])
