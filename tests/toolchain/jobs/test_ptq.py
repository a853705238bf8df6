"""The ``toolchain ptq`` job (``ptq_run``: through the command line): both ONNX, the calibrated checkpoint
and the resolved config beside each, and that config running the job again."""

from __future__ import annotations

import numpy as np
import torch

from deploy.qdq.rules import check_qdq
from toolchain.models.yolo import load_model


def test_ptq_command_writes_both_onnx_the_checkpoint_and_their_config(ptq_run):
    from base.metadata import ModelMetadata
    from toolchain.models.yolo import trained_imgsz

    assert ptq_run.code == 0, ptq_run.err
    folder = ptq_run.folder
    int8, fp32 = ModelMetadata.load(folder / "tiny.int8.onnx"), ModelMetadata.load(folder / "tiny.onnx")
    assert int8.precision == "int8" and fp32.precision == "fp32" and int8.imgsz == fp32.imgsz == (64, 64)
    config = int8.extra["config"]
    assert config == fp32.extra["config"] and config["imgsz"] == 64 and config["num_images"] == 8
    assert int8.quantization["overrides"][0]["input"] == {"calibrator": "moving_average_max"}
    checkpoint = torch.load(folder / "tiny.int8.pt", weights_only=True)  # tensors and plain data only
    assert checkpoint["config"] == config and trained_imgsz(load_model(folder / "tiny.int8.pt")) == 64
    assert check_qdq(folder / "tiny.int8.onnx").ok


def test_config_of_the_sidecar_reproduces_the_ptq_run(ptq_run, tmp_path):
    import onnx
    from onnx import numpy_helper

    from toolchain.cli import main

    again = tmp_path / "again.int8.onnx"
    assert main(["ptq", "--config", str(ptq_run.folder / "tiny.int8.onnx.json"), "--out", str(again), "--no-fp32"]) == 0

    def weights(path):
        return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}

    first, second = weights(ptq_run.folder / "tiny.int8.onnx"), weights(again)
    assert first.keys() == second.keys()
    for name, value in first.items():  # int8 weights exactly; ranges to float32 summation order
        if value.dtype.kind == "f":
            np.testing.assert_allclose(value, second[name], rtol=1e-6, atol=0, err_msg=name)
        else:
            np.testing.assert_array_equal(value, second[name], err_msg=name)
