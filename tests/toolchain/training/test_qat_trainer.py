"""``QATTrainer``: the generic trainer on a model with quantizers, refused without them."""

from __future__ import annotations

import pytest

from base.errors import ToolchainError
from toolchain.models.yolo import load_model
from toolchain.training.config import TrainConfig
from toolchain.training.qat_trainer import QATConfig, QATTrainer


def test_trainer_refuses_a_model_without_quantizers(tiny_checkpoint, tiny_dataset):
    with pytest.raises(ToolchainError, match="no quantizers"):
        QATTrainer(load_model(tiny_checkpoint), TrainConfig(data=str(tiny_dataset), imgsz=64), QATConfig())
