from __future__ import annotations

import pytest

from base.errors import ToolchainError, UsageError
from toolchain.jobs.prologue import prologue
from toolchain.models.names import class_names


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
