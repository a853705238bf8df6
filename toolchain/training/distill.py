"""Distillation from any FP32 teacher with the student's classes (a yolov8s teacher for a yolov8n student).

Class scores and DFL box distributions are per anchor, so for the same image size, strides, ``reg_max`` and
classes they match directly whatever the widths. The three head-input feature maps match through a learned
1x1 conv per level where the widths differ (student channels to teacher channels), and directly where they
are equal, so a same-size teacher gives exactly ``losses.distillation_loss``.

The adapters are the ``Distiller``'s only parameters (to optimize and to checkpoint); the frozen teacher is
held outside its submodules, so it is in neither ``parameters()`` nor ``state_dict()``. The adapters serve the
loss only and are never exported.

Example:
    >>> distiller = Distiller.from_checkpoint("yolov8s-signs.pt", student, features=True).to(device)
    >>> loss = distiller.loss(student(images), images)
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from base.errors import ToolchainError
from toolchain.models.names import class_names
from toolchain.models.yolo import load_model
from toolchain.training.losses import distillation_loss

logger = logging.getLogger(__name__)


def head_channels(model: nn.Module) -> list[int]:
    """The input channels of the Detect head, one per level: the widths of the features it is fed."""
    head = model.model[-1]
    return [next(m for m in branch.modules() if isinstance(m, nn.Conv2d)).in_channels for branch in head.cv2]


def head_outputs(out: dict | tuple) -> dict:
    """The raw prediction dict (``scores``, ``boxes``, ``feats``) of a model's train- or eval-mode output."""
    out = out[1] if isinstance(out, tuple) else out
    return out["one2many"] if "one2many" in out else out


def _abbreviated(names: list[str], shown: int = 6) -> str:
    more = f", ... +{len(names) - shown} more" if len(names) > shown else ""
    return f"{len(names)} [{', '.join(names[:shown])}{more}]"


def check_teacher(teacher: nn.Module, student: nn.Module, teacher_name: str, student_name: str) -> None:
    """Refuse a teacher whose per-anchor outputs cannot be matched with the student's.

    Raises:
        ToolchainError: Naming both models and what differs (classes, ``reg_max`` or strides).
    """
    t_names, s_names = class_names(teacher), class_names(student)
    if t_names != s_names:
        raise ToolchainError(
            f"{teacher_name}: the teacher has {_abbreviated(t_names)} classes but {student_name} has "
            f"{_abbreviated(s_names)}; distil from a teacher trained on the student's data"
        )
    reg_max = (teacher.model[-1].reg_max, student.model[-1].reg_max)
    for what, (t, s) in {"reg_max": reg_max, "strides": (teacher.stride.tolist(), student.stride.tolist())}.items():
        if t != s:
            raise ToolchainError(
                f"{teacher_name}: the teacher's {what} {t} differs from {student_name}'s {s}; "
                "their per-anchor outputs cannot be matched: use a YOLOv8 detection teacher of the same layout"
            )


def feature_adapter(c_student: int, c_teacher: int) -> nn.Module:
    """A learned 1x1 conv from the student's width to the teacher's; identity where they are equal."""
    return nn.Identity() if c_student == c_teacher else nn.Conv2d(c_student, c_teacher, 1)


class Distiller(nn.Module):
    """Distillation loss from a frozen FP32 teacher, with one feature adapter per level.

    Args:
        teacher: The FP32 teacher; put in eval mode, frozen, and kept out of this module's parameters.
        student: The model being trained (read for its head's widths, classes, ``reg_max`` and strides).
        features: Also match the three head-input feature maps (through the adapters); else no adapters.
        teacher_name: The teacher in error messages (its file).
        student_name: The student in error messages (its file).

    Raises:
        ToolchainError: The teacher's classes, ``reg_max`` or strides are not the student's.
    """

    def __init__(
        self, teacher: nn.Module, student: nn.Module, features: bool,
        teacher_name: str = "the teacher", student_name: str = "the student",
    ) -> None:  # fmt: skip
        super().__init__()
        check_teacher(teacher, student, teacher_name, student_name)
        self.features = features
        widths = zip(head_channels(student), head_channels(teacher)) if features else []
        self.adapters = nn.ModuleList(feature_adapter(c_s, c_t) for c_s, c_t in widths)
        # in a list, not an attribute: a submodule would be optimized, checkpointed and put in train mode
        self._teacher = [teacher.float().eval().requires_grad_(False)]

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, student: nn.Module, features: bool, student_name: str = "the student"
    ) -> Distiller:
        """A ``Distiller`` whose teacher is the FP32 model in ``path`` (ours or an ultralytics ``.pt``).

        Raises:
            ToolchainError: ``path`` does not load (``load_model``), or its classes, ``reg_max`` or strides
                are not the student's.
        """
        distiller = cls(load_model(path), student, features, str(path), student_name)
        logger.info("Distilling from %s: feature adapters %s", path,
                    [type(a).__name__ for a in distiller.adapters] or "off")  # fmt: skip
        return distiller

    @property
    def teacher(self) -> nn.Module:
        """The frozen FP32 teacher (not a submodule)."""
        return self._teacher[0]

    def _apply(self, fn, recurse: bool = True):
        """``.to()``, ``.cuda()``, ``.float()``... move the teacher with the adapters."""
        self.teacher._apply(fn)
        return super()._apply(fn, recurse)

    def forward(self, student_preds: dict, images: torch.Tensor) -> torch.Tensor:
        """The distillation loss of the student's train-mode outputs on ``images`` (see ``loss``)."""
        with torch.no_grad():
            teacher = head_outputs(self.teacher(images))
        student = head_outputs(student_preds)
        if self.features:
            student = {**student, "feats": [a(f) for a, f in zip(self.adapters, student["feats"])]}
        return distillation_loss(student, teacher, self.features)

    def loss(self, student_preds: dict, images: torch.Tensor) -> torch.Tensor:
        """MSE of class probabilities and DFL box distributions, plus the adapted features when asked.

        Args:
            student_preds: The student's train-mode output on ``images`` (``scores``, ``boxes``, ``feats``).
            images: The batch both models see, on this module's device.

        Returns:
            The unweighted scalar loss; gradients reach the student and the adapters, never the teacher.
        """
        return self(student_preds, images)
