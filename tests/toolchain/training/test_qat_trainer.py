"""``QATTrainer``: the generic trainer on a model with quantizers, refused without them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from base.errors import ToolchainError
from toolchain.models.checkpoint import load_checkpoint, save_checkpoint
from toolchain.models.yolo import load_model
from toolchain.quantization.calibration import calibrate
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.placement import quantize_model
from toolchain.training.config import TrainConfig
from toolchain.training.losses import LossConfig
from toolchain.training.qat_trainer import QATConfig, QATTrainer


def test_trainer_refuses_a_model_without_quantizers(tiny_checkpoint, tiny_dataset):
    with pytest.raises(ToolchainError, match="no quantizers"):
        QATTrainer(load_model(tiny_checkpoint), TrainConfig(data=str(tiny_dataset), imgsz=64), QATConfig())


def _quantized(names: list[str], width: float, seed: int = 0):
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    torch.manual_seed(seed)
    cfg = {**yaml_model_load("yolov8n.yaml"), "scale": "x", "scales": {"x": [0.33, width, 1024]}}
    model = DetectionModel(cfg, nc=len(names), verbose=False)
    model.names = dict(enumerate(names))
    return model


def test_a_teacher_of_another_width_trains_its_adapters_and_resumes_them(tiny_dataset, tmp_path):
    """The old trainer matched the teacher's features to the student's directly (a shape error for another
    width) and had no adapters to optimize or save: here they are in the optimizer, move on a step and come
    back from last.pt."""
    names = [f"c{i}" for i in range(10)]
    student = _quantized(names, 1 / 16)
    quantize_model(student, QuantConfig())
    calibrate(student, [np.random.default_rng(0).random((2, 3, 64, 64), np.float32)])
    teacher = _quantized(names, 1 / 8, seed=1)
    loss = LossConfig(distill=1.0, distill_features=True)
    cfg = TrainConfig(data=str(tiny_dataset), imgsz=64, epochs=2, batch=2, workers=0, ema_decay=0, loss=loss)
    trainer = QATTrainer(student, cfg, QATConfig(), teacher, teacher_name="s.pt")
    adapters = list(trainer.distiller.parameters())
    assert adapters and {id(p) for p in trainer.optimizer.param_groups[-1]["params"]} == {id(p) for p in adapters}
    before = [p.detach().clone() for p in adapters]
    batch = {"img": torch.rand(2, 3, 64, 64), "batch_idx": torch.tensor([0.0]), "cls": torch.tensor([[1.0]]),
             "bboxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}  # fmt: skip
    trainer.model.train()
    total, items = trainer.compute_loss(batch)
    assert items["distill"] > 0
    trainer.optimizer.zero_grad()
    total.backward()
    trainer.optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(adapters, before))

    state = trainer.state(0)
    save_checkpoint(tmp_path / "last.pt", state.pop("model"), 64, None, **state)
    saved = load_checkpoint(tmp_path / "last.pt")
    resumed = QATTrainer(saved["model"], cfg, QATConfig(), teacher, teacher_name="s.pt")
    resumed.load_state(saved)
    assert all(torch.equal(a, b) for a, b in zip(resumed.distiller.parameters(), adapters))
    assert resumed.optimizer.state_dict()["param_groups"] == trainer.optimizer.state_dict()["param_groups"]
    del saved["distill_adapters"]
    with pytest.raises(ToolchainError, match="holds no distillation adapters"):
        QATTrainer(saved["model"], cfg, QATConfig(), teacher).load_state(saved)


def test_a_teacher_with_other_classes_is_refused_naming_it(tiny_dataset):
    student = _quantized([f"c{i}" for i in range(10)], 1 / 16)
    quantize_model(student, QuantConfig())
    calibrate(student, [np.random.default_rng(0).random((2, 3, 64, 64), np.float32)])
    cfg = TrainConfig(data=str(tiny_dataset), imgsz=64, loss=LossConfig(distill=1.0))
    with pytest.raises(ToolchainError, match=r"other\.pt: the teacher has 3 \[a, b, c\] classes"):
        QATTrainer(student, cfg, QATConfig(), _quantized(["a", "b", "c"], 1 / 8), teacher_name="other.pt")
