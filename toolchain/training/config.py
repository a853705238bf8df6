"""The training loop's settings: ``TrainConfig``, its field checks and the ``augment`` overrides checked
against ultralytics' own configuration checker (imported only when there are overrides to check)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from toolchain.config.fields import (
    Decay,
    Device,
    ExistingPath,
    FieldError,
    Fraction,
    ImageSize,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    check_fields,
)
from toolchain.training.losses import LossConfig
from toolchain.training.schedulers import ScheduleConfig


@dataclass(frozen=True)
class TrainConfig:
    """One training run; the defaults are QAT's (fine-tuning a converged model), this loop's one user.

    Attributes:
        data: The data.yaml.
        imgsz: Square training and validation size (null: the size the starting weights were trained at).
        epochs: Epochs.
        batch: Batch size per process (under torchrun the effective batch is nproc x batch).
        optimizer: SGD or AdamW.
        lr0: Base learning rate (small: it keeps a converged model near its FP32 optimum); under torchrun
            scaled with the effective batch by distributed.lr_scaling.
        momentum: SGD momentum / Adam beta1.
        weight_decay: Weight decay (not on biases and norms).
        grad_clip: Max gradient norm (0: off).
        ema_decay: EMA decay of the weights (0: no EMA).
        amp: Mixed precision on CUDA (no effect on CPU).
        device: cpu, cuda, cuda:0 (0 means cuda:0).
        workers: Data-loading processes (per process).
        threads: Torch CPU threads (0: every core, shared by the processes on a node).
        mosaic: Mosaic probability (off by default for QAT, as the peers do).
        augment: Other ultralytics augmentation overrides, e.g. {fliplr: 0.5, scale: 0.3}.
        val_images: Validate on the first N val images (0: all).
        seed: Random seed.
        schedule: Learning-rate schedule.
        loss: Loss terms.
    """

    data: ExistingPath
    imgsz: ImageSize | None = None
    epochs: PositiveInt = 5
    batch: PositiveInt = 16
    optimizer: Literal["SGD", "AdamW"] = "SGD"
    lr0: PositiveFloat = 0.0002
    momentum: Decay = 0.9
    weight_decay: NonNegativeFloat = 5e-4
    grad_clip: NonNegativeFloat = 10.0
    ema_decay: Decay = 0.999
    amp: bool = True
    device: Device = "cpu"
    workers: NonNegativeInt = 2
    threads: NonNegativeInt = 0
    mosaic: Fraction = 0.0
    augment: dict = field(default_factory=dict)
    val_images: NonNegativeInt = 0
    seed: int = 0
    schedule: ScheduleConfig = ScheduleConfig()
    loss: LossConfig = LossConfig()

    def __post_init__(self) -> None:
        check_fields(self)
        check_augment(self.augment)


AUGMENTATIONS = ("hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear", "perspective", "flipud",
                 "fliplr", "bgr", "mixup", "cutmix", "copy_paste", "copy_paste_mode", "auto_augment",
                 "erasing")  # fmt: skip
"""ultralytics' augmentation settings ``augment`` may override (mosaic has a field of its own)."""


def check_augment(augment: dict) -> None:
    """Every key of ``augment`` is one of ``AUGMENTATIONS`` and its value one ultralytics accepts.

    Raises:
        FieldError: Naming ``augment[key]``, and the keys allowed or the value expected.
    """
    if not augment:
        return
    from ultralytics.cfg import check_cfg  # only when there is something to check: it imports ultralytics

    for key, value in augment.items():
        where = f"augment[{key!r}]"
        if key == "mosaic":
            raise FieldError(where, "mosaic is a setting of its own: use --mosaic (train.mosaic)")
        if key not in AUGMENTATIONS:
            hint = " (YAML needs a space after the colon: {fliplr: 0})" if ":" in str(key) else ""
            raise FieldError(where, f"not an augmentation setting; expected one of {', '.join(AUGMENTATIONS)}{hint}")
        try:
            check_cfg({key: value})
        except (TypeError, ValueError) as exc:
            raise FieldError(where, str(exc)) from None
