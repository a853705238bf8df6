from __future__ import annotations

import pytest

from base.errors import ToolchainError
from toolchain.models.names import class_names
from toolchain.models.yolo import load_model, model_stride


def test_weights_path_that_does_not_exist(tmp_path):
    with pytest.raises(ToolchainError, match=r"missing\.pt: weights not found; .*make baseline"):
        load_model(tmp_path / "missing.pt")


def test_file_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ToolchainError, match=r"bad\.pt: not a readable PyTorch checkpoint"):
        load_model(bad)


def test_load_tiny_checkpoint(tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    assert class_names(model)[5] == "speed_limit" and model_stride(model) == 32
    assert not model.training
