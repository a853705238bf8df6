"""What a config field accepts, said once in its type: the markers (``Range``, ``Writable``...), the
named types built from them (``PositiveInt``, ``Pattern``...), a type taken apart (``shape``) and put
into words (``describe``, for errors and ``--help`` alike); and ``FieldError``, the one error of a bad value.

The checks behind the markers are ``checks`` (values) and ``machine`` (files, GPUs, memory); the
conversion of a value to its type is ``convert``.

Example:
    >>> describe(shape(Annotated[float | None, Range(gt=0)]))
    'a number > 0 or null'
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from base.errors import UsageError


class FieldError(UsageError):
    """A config value that is not allowed; ``key`` is its dotted path (``quant.input.percentile``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key, self.message = key, message

    def within(self, prefix: str) -> FieldError:
        """The same error with its key seen from ``prefix`` (a section's dotted path)."""
        return FieldError(_join(prefix, self.key), self.message)


def _join(prefix: str, key: str) -> str:
    if not prefix:
        return key
    return prefix + key if not key or key.startswith("[") else f"{prefix}.{key}"


@dataclass(frozen=True)
class Range:
    """Bounds of a number; ``None`` is no bound."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def holds(self, x: float) -> bool:
        return not (
            (self.ge is not None and x < self.ge) or (self.gt is not None and x <= self.gt)
            or (self.le is not None and x > self.le) or (self.lt is not None and x >= self.lt)
        )  # fmt: skip

    def __str__(self) -> str:
        low = (f"[{self.ge}", self.ge) if self.ge is not None else (f"({self.gt}", self.gt)
        high = (f"{self.le}]", self.le) if self.le is not None else (f"{self.lt})", self.lt)
        if low[1] is not None and high[1] is not None:
            return f"in {low[0]}, {high[0]}"
        if low[1] is not None:
            return f">= {self.ge}" if self.ge is not None else f"> {self.gt}"
        return f"<= {self.le}" if self.le is not None else f"< {self.lt}"


@dataclass(frozen=True)
class MultipleOf:
    """An integer divisible by ``n`` (image sizes: the stride 32)."""

    n: int


class Regex:
    """A string that compiles as a Python regular expression."""


class ExistingFile:
    """A path to a file that exists when the config is built."""


class TorchDevice:
    """A torch device this machine has: ``cpu``, ``cuda``, ``cuda:N`` or ``N`` (``0,1`` for ultralytics'
    multi-GPU training), checked against the GPUs torch sees."""


class FitsMemory:
    """An image size whose input and activations this machine's memory can hold (``base.limits``)."""


@dataclass(frozen=True)
class Writable:
    """A path the command writes (a file ending in one of ``suffixes``, or a folder when there are
    none): the nearest folder of it that exists must be a writable folder, so that a run does not
    fail at its end for want of a place to write."""

    suffixes: tuple[str, ...] = ()


PositiveInt = Annotated[int, Range(ge=1)]
NonNegativeInt = Annotated[int, Range(ge=0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]
Fraction = Annotated[float, Range(ge=0, le=1)]
Decay = Annotated[float, Range(ge=0, lt=1)]
EpochOrNever = Annotated[int, Range(ge=-1)]
ImageSize = Annotated[int, Range(ge=32), MultipleOf(32), FitsMemory()]
Pattern = Annotated[str, Regex()]
ExistingPath = Annotated[str, ExistingFile()]
Device = Annotated[str, TorchDevice()]


@dataclass(frozen=True)
class Shape:
    """A field type taken apart: the plain type, its checks, and whether ``None`` is allowed."""

    base: Any
    checks: tuple = ()
    optional: bool = False

    @property
    def origin(self) -> Any:
        return typing.get_origin(self.base)

    @property
    def args(self) -> tuple:
        return typing.get_args(self.base)

    @property
    def is_config(self) -> bool:
        return isinstance(self.base, type) and dataclasses.is_dataclass(self.base)

    @property
    def is_container(self) -> bool:
        return self.base in (dict, tuple, list) or self.origin in (dict, tuple, list)


def shape(hint: Any) -> Shape:
    """Take ``Annotated[int | None, Range(ge=1)]`` and the like apart."""
    checks: tuple = ()
    optional = False
    while True:
        if typing.get_origin(hint) is Annotated:
            hint, *extra = typing.get_args(hint)
            checks += tuple(extra)
        elif typing.get_origin(hint) in (Union, types.UnionType) and type(None) in typing.get_args(hint):
            rest = [a for a in typing.get_args(hint) if a is not type(None)]
            hint, optional = (rest[0] if len(rest) == 1 else Union[tuple(rest)]), True  # noqa: UP007
        else:
            return Shape(hint, checks, optional)


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    """Field name to resolved type (with ``Annotated`` extras) of a config dataclass."""
    return typing.get_type_hints(cls, include_extras=True)


def describe(s: Shape) -> str:
    """What a field accepts, in words (for errors and help)."""
    if typing.get_origin(s.base) is Literal:
        text = f"one of {list(s.args)}"
    elif s.base is bool:
        text = "true or false"
    elif s.base is int:
        text = "an integer"
    elif s.base is float:
        text = "a number"
    elif s.is_config:
        text = "a mapping"
    elif s.base is dict or s.origin is dict:
        text = "a mapping"
    elif s.is_container:
        text = "a list"
    else:
        text = "a string"
    for c in s.checks:
        if isinstance(c, Range):
            text += f" {c}"
        elif isinstance(c, MultipleOf):
            text += f", a multiple of {c.n}"
        elif isinstance(c, Regex):
            text = "a regular expression"
        elif isinstance(c, ExistingFile):
            text = "the path of an existing file"
        elif isinstance(c, Writable):
            text = f"a path ending in {' or '.join(c.suffixes)}" if c.suffixes else "a folder path"
            text += " in a writable folder"
    return text + (" or null" if s.optional else "")
