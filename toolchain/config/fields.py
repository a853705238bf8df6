"""Everything a config class is written with, in one import: the field types (``PositiveInt``,
``Pattern``, ``ExistingPath``, ``Writable``...), ``FieldError``, and ``check_fields`` for its
``__post_init__``. Nothing is defined here; each name lives in the module of its one job, and no
module of ``toolchain.config`` imports this one, so imports go one way:

``field_types`` (what a field accepts) <- ``checks`` / ``machine`` (checks of values, of this
machine) <- ``convert`` (values to types, configs built) <- ``tree`` <- ``files`` <- ``flags``;
``docstrings`` (help lines) stands alone.

How a config class is written with them: the example in ``toolchain.config.convert``.
"""

from __future__ import annotations

from toolchain.config.convert import check_fields, convert
from toolchain.config.docstrings import field_help
from toolchain.config.field_types import (
    Decay,
    Device,
    EpochOrNever,
    ExistingFile,
    ExistingPath,
    FieldError,
    FitsMemory,
    Fraction,
    ImageSize,
    MultipleOf,
    NonNegativeFloat,
    NonNegativeInt,
    Pattern,
    PositiveFloat,
    PositiveInt,
    Range,
    Regex,
    Shape,
    TorchDevice,
    Writable,
    describe,
    hints,
    shape,
)
from toolchain.config.machine import device_problem

__all__ = [
    "Decay",
    "Device",
    "EpochOrNever",
    "ExistingFile",
    "ExistingPath",
    "FieldError",
    "FitsMemory",
    "Fraction",
    "ImageSize",
    "MultipleOf",
    "NonNegativeFloat",
    "NonNegativeInt",
    "Pattern",
    "PositiveFloat",
    "PositiveInt",
    "Range",
    "Regex",
    "Shape",
    "TorchDevice",
    "Writable",
    "check_fields",
    "convert",
    "describe",
    "device_problem",
    "field_help",
    "hints",
    "shape",
]
