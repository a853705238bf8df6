from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from base.errors import ToolchainError
from toolchain.training.distill import Distiller, head_channels
from toolchain.training.losses import distillation_loss

NAMES = ["stop", "yield", "speed"]
WIDTHS = {"tiny": 1 / 16, "small": 1 / 8}  # head inputs 16/32/64 and 32/64/128 channels


def _model(size: str = "tiny", names: list[str] = NAMES, seed: int = 0) -> nn.Module:
    """A width-scaled YOLOv8 (depth as yolov8n) with ``names``."""
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    torch.manual_seed(seed)
    cfg = {**yaml_model_load("yolov8n.yaml"), "scale": size, "scales": {size: [0.33, WIDTHS[size], 1024]}}
    model = DetectionModel(cfg, nc=len(names), verbose=False)
    model.names = dict(enumerate(names))
    return model


def _save(model: nn.Module, path) -> str:
    torch.save({"model": model, "train_args": {"imgsz": 64}}, path)
    return str(path)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def teacher_s(tmp_path_factory) -> str:
    """A teacher twice the student's width, as an ultralytics checkpoint."""
    return _save(_model("small", seed=1), tmp_path_factory.mktemp("teacher") / "s.pt")


def test_teacher_of_another_width_trains_student_and_adapters(teacher_s, images):
    student = _model().train()
    distiller = Distiller.from_checkpoint(teacher_s, student, features=True)
    assert head_channels(student) == [16, 32, 64] and head_channels(distiller.teacher) == [32, 64, 128]
    assert all(isinstance(a, nn.Conv2d) for a in distiller.adapters)
    optimizer = torch.optim.Adam([*student.parameters(), *distiller.parameters()], lr=1e-3)
    losses = []
    for step in range(4):
        optimizer.zero_grad()
        loss = distiller.loss(student(images), images)
        loss.backward()
        if step == 0:
            assert torch.isfinite(loss) and loss > 0
            assert student.model[-1].cv3[0][2].weight.grad.abs().sum() > 0  # the head outputs
            assert student.model[0].conv.weight.grad.abs().sum() > 0  # and the backbone
            assert all(a.weight.grad.abs().sum() > 0 for a in distiller.adapters)
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.parametrize("features", [True, False])
def test_same_size_teacher_is_todays_distillation(tmp_path, images, features):
    teacher = _model(seed=1)
    path = _save(teacher, tmp_path / "n.pt")
    student = _model().train()
    distiller = Distiller.from_checkpoint(path, student, features=features)
    assert list(distiller.parameters()) == [] and all(isinstance(a, nn.Identity) for a in distiller.adapters)
    preds = student(images)
    with torch.no_grad():
        expected = distillation_loss(preds, teacher.eval()(images)[1], features=features)
    assert torch.equal(distiller.loss(preds, images), expected)


def test_teacher_with_other_classes_is_refused(tmp_path):
    path = _save(_model(names=["cat", "dog", "bird"]), tmp_path / "animals.pt")
    with pytest.raises(ToolchainError, match=r"animals\.pt.*3 \[cat, dog, bird\].*student\.pt.*3 \[stop"):
        Distiller.from_checkpoint(path, _model(), features=True, student_name="student.pt")


def test_teacher_with_other_reg_max_is_refused():
    teacher = _model()
    teacher.model[-1].reg_max = 8
    with pytest.raises(ToolchainError, match=r"t\.pt: the teacher's reg_max 8 differs from s\.pt's 16"):
        Distiller(teacher, _model(), True, "t.pt", "s.pt")


def test_teacher_is_frozen_and_kept_out_of_parameters_and_state_dict(teacher_s, images):
    student = _model().train()
    distiller = Distiller.from_checkpoint(teacher_s, student, features=True).train()
    teacher = distiller.teacher
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    ids = {id(p) for p in teacher.parameters()}
    assert ids.isdisjoint(id(p) for p in distiller.parameters())
    assert sorted(distiller.state_dict()) == [f"adapters.{i}.{k}" for i in range(3) for k in ("bias", "weight")]
    distiller.loss(student(images), images).backward()
    assert all(p.grad is None for p in teacher.parameters())
    distiller.to(torch.float64)  # moves and casts the teacher with the adapters
    assert teacher.model[0].conv.weight.dtype == torch.float64 == distiller.adapters[0].weight.dtype


def test_adapters_state_dict_round_trip(teacher_s, images):
    student = _model().train()
    trained = Distiller.from_checkpoint(teacher_s, student, features=True)
    for a in trained.adapters:
        nn.init.normal_(a.weight, generator=torch.Generator().manual_seed(2))
    state = copy.deepcopy(trained.state_dict())
    resumed = Distiller.from_checkpoint(teacher_s, student, features=True)
    assert not torch.equal(resumed.adapters[0].weight, trained.adapters[0].weight)
    resumed.load_state_dict(state)
    for a, b in zip(resumed.adapters, trained.adapters):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    preds = student(images)
    assert torch.equal(resumed.loss(preds, images), trained.loss(preds, images))
