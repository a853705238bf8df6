from __future__ import annotations

import numpy as np
import pytest
import torch

from base.errors import ToolchainError, UsageError
from toolchain.data.signs import SIGN_CLASSES
from toolchain.jobs.prologue import prologue
from toolchain.models.checkpoint import save_checkpoint
from toolchain.models.names import class_names
from toolchain.models.yolo import build_model
from toolchain.quantization.calibration import calibrate
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.placement import quantize_model
from toolchain.quantization.quantized_model import is_quantized


def test_prologue_loads_at_the_trained_size_or_the_one_asked(tiny_checkpoint, tiny_dataset):
    model, imgsz = prologue(tiny_checkpoint, None, tiny_dataset, {"--out": "elsewhere.onnx"})
    assert imgsz == 64 and class_names(model)[0] == "no_entry"
    assert prologue(tiny_checkpoint, 128)[1] == 128


@pytest.mark.parametrize("clash", ["weights", "data"])
def test_an_output_over_an_input_is_refused_before_loading(tmp_path, tiny_checkpoint, tiny_dataset, clash):
    target = {"weights": tiny_checkpoint, "data": tiny_dataset}[clash]
    weights = tiny_checkpoint if clash == "weights" else tmp_path / "absent.pt"  # refused before it is read
    with pytest.raises(UsageError, match=f"--out {target}: the same file as the input --{clash}"):
        prologue(weights, None, tiny_dataset, {"--out": target})


def test_weights_inside_the_run_folder_are_refused(tiny_checkpoint):
    with pytest.raises(UsageError, match="inside the run folder"):
        prologue(tiny_checkpoint, run=tiny_checkpoint.parent)


def test_classes_are_checked_against_the_data(tiny_checkpoint, tmp_path):
    data = tmp_path / "data.yaml"
    (tmp_path / "images").mkdir()
    data.write_text(f"path: {tmp_path}\ntrain: images\nval: images\nnames: [a, b]\n")
    with pytest.raises(ToolchainError, match="the model has 10 classes"):
        prologue(tiny_checkpoint, None, data)


@pytest.fixture(scope="module")
def quantized_checkpoint(tmp_path_factory):
    """A calibrated fake-quant model saved as ptq and qat save theirs."""
    torch.manual_seed(0)
    model = build_model("yolov8n.yaml", list(SIGN_CLASSES))
    quantize_model(model, QuantConfig())
    calibrate(model, [np.random.default_rng(0).random((1, 3, 64, 64), np.float32)])
    return save_checkpoint(tmp_path_factory.mktemp("q") / "best.pt", model, 64)


def test_jobs_that_calibrate_refuse_a_quantized_checkpoint_in_one_line(
    quantized_checkpoint, tiny_checkpoint, tiny_dataset
):
    model, _ = prologue(quantized_checkpoint, None, tiny_dataset)  # qat continues it, parity evaluates it
    assert is_quantized(model)
    with pytest.raises(ToolchainError) as refused:
        prologue(quantized_checkpoint, None, tiny_dataset, fp32_only=True)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"--weights {quantized_checkpoint}: a quantized checkpoint (57")
    assert message.endswith(f"or train it further with 'toolchain qat --weights {quantized_checkpoint}'")
    assert not is_quantized(prologue(tiny_checkpoint, None, tiny_dataset, fp32_only=True)[0])
