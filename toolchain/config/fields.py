"""What a config field accepts, said once in its type: ranges, choices, regexes, files; and its help line.

A field's type is the whole contract: ``Annotated[float, Range(gt=0)]`` is checked the same way
whether the value comes from YAML, a flag or Python, and the same words go into ``--help`` and into
the error. The help line of a field is its entry in the class docstring's ``Attributes:`` section.

Example:
    >>> @dataclass(frozen=True)
    ... class StepConfig:
    ...     '''Attributes:
    ...         lr0: Base learning rate.'''
    ...     lr0: PositiveFloat = 0.01
    ...     def __post_init__(self) -> None:
    ...         check_fields(self)
    >>> StepConfig(lr0=-1)  # FieldError: lr0: expected a number > 0, got -1
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from base.errors import UsageError
from base.fileio import write_problem
from base.limits import file_kind, image_size_problem


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


def device_problem(value: str) -> str | None:
    """Why ``value`` is not a device of this machine (``None`` where it is)."""
    text = str(value).strip().lower()
    if text == "cpu":
        return None
    if text == "mps":
        import torch

        missing = "mps asks for Apple's GPU, which this machine lacks; use cpu"
        return None if torch.backends.mps.is_available() else missing
    ids = text.removeprefix("cuda").removeprefix(":").split(",") if text != "cuda" else ["0"]
    if not all(i.strip().isdigit() for i in ids):
        return f"expected cpu, cuda, cuda:N or GPU ids like 0 or 0,1; got {value!r}"
    import torch  # lazy: configs are built before the heavy imports of a command

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return f"{value} asks for a CUDA GPU, and torch sees none on this machine; use cpu"
    bad = [int(i) for i in ids if int(i) >= count]
    if bad:
        return f"GPU {bad[0]} does not exist: torch sees {count} GPU(s), ids 0..{count - 1}"
    return None


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


@functools.cache
def field_help(cls: type) -> dict[str, str]:
    """Field name to its one-line help, from the ``Attributes:`` (or ``Args:``) section of the docstring."""
    lines = (cls.__doc__ or "").splitlines()
    out: dict[str, str] = {}
    inside, indent, current = False, None, None
    for line in lines:
        stripped = line.strip()
        if stripped in ("Attributes:", "Args:"):
            inside, indent, current = True, None, None
            continue
        if not inside or not stripped:
            continue
        level = len(line) - len(line.lstrip())
        indent = level if indent is None else indent
        match = re.match(r"([\w, ]+):\s*(.*)", stripped)
        if level == indent and match:
            current = [n.strip() for n in match.group(1).split(",")]
            for name in current:
                out[name] = match.group(2)
        elif level > indent and current:
            for name in current:
                out[name] += " " + stripped
        elif level < indent:
            inside = False
    return {k: v.replace("``", "") for k, v in out.items()}


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


def check_fields(obj: object) -> None:
    """Check every field of a config instance against its type (call first in ``__post_init__``).

    Reads the values through ``__dict__`` so that checking is not counted as using a field.
    """
    values = obj.__dict__
    for f in dataclasses.fields(obj):
        convert(hints(type(obj))[f.name], values[f.name], f.name)


def convert(hint: Any, value: Any, key: str) -> Any:
    """``value`` (from YAML, a flag or Python) as the type ``hint`` asks for, checked; else ``FieldError``."""
    s = shape(hint)
    if value is None:
        if s.optional:
            return None
        raise FieldError(key, f"expected {describe(s)}, got null")
    value = _typed(s, value, key)
    for c in s.checks:
        _check(c, s, value, key)
    return value


def _typed(s: Shape, value: Any, key: str) -> Any:
    bad = FieldError(key, f"expected {describe(s)}, got {value!r}")
    if typing.get_origin(s.base) is Literal:
        if value not in s.args or isinstance(value, bool) != isinstance(s.args[0], bool):
            raise bad
        return value
    if s.base is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if s.base in (int, float):
        number = isinstance(value, int) or (s.base is float and isinstance(value, float))
        if isinstance(value, bool) or not number:
            raise bad
        return s.base(value)
    if s.base is str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise bad
        return str(value)
    if s.is_config:
        if isinstance(value, s.base):
            return value
        if not isinstance(value, dict):
            raise bad
        from toolchain.config.tree import build

        return build(s.base, value, key)
    if s.base is dict or s.origin is dict:
        if not isinstance(value, dict):
            raise bad
        kt, vt = s.args or (Any, Any)
        return {_mapping_key(kt, k, f"{key}[{k!r}]"): _any(vt, v, f"{key}[{k!r}]") for k, v in value.items()}
    if s.base is tuple or s.origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise FieldError(key, f"expected {describe(s)}, got {type(value).__name__} {value!r}")
        item = s.args[0] if s.args else Any
        return tuple(_any(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    raise FieldError(key, f"unsupported field type {s.base!r}")  # our bug: a config field of a type not handled


def _mapping_key(hint: Any, value: Any, key: str) -> Any:
    """A mapping key: JSON (sidecars, reports) writes integer keys as strings, so those are read back."""
    if isinstance(value, str) and hint is not Any and shape(hint).base in (int, float):
        return from_text(hint, value, key)
    return _any(hint, value, key)


def _any(hint: Any, value: Any, key: str) -> Any:
    return value if hint is Any else convert(hint, value, key)


def _check(c: object, s: Shape, value: Any, key: str) -> None:
    if isinstance(c, Range) and not c.holds(value):
        raise FieldError(key, f"expected {describe(s)}, got {value!r}")
    if isinstance(c, MultipleOf) and value % c.n:
        raise FieldError(key, f"expected {describe(s)}, got {value!r}")
    if isinstance(c, Regex):
        try:
            re.compile(value)
        except re.error as exc:
            raise FieldError(key, f"{value!r} is not a valid regular expression ({exc})") from exc
    if isinstance(c, ExistingFile) and not Path(value).is_file():
        if Path(value).exists():  # a folder, a device, a FIFO: named as what it is, never read
            raise FieldError(key, f"{value} is {file_kind(Path(value).stat().st_mode)}, not a regular file")
        raise FieldError(key, f"file not found: {value}")
    if isinstance(c, Writable):
        _check_writable(c, value, key)
    if isinstance(c, TorchDevice) and device_problem(value):
        raise FieldError(key, device_problem(value))
    if isinstance(c, FitsMemory) and image_size_problem(value):
        raise FieldError(key, f"{value}: {image_size_problem(value)}")


def _check_writable(c: Writable, value: str, key: str) -> None:
    path = Path(value)
    if c.suffixes and not path.name.endswith(c.suffixes):
        raise FieldError(key, f"expected a file name ending in {' or '.join(c.suffixes)}, got {value!r}")
    if not c.suffixes and path.exists() and not path.is_dir():
        raise FieldError(key, f"{value} is a file; expected a folder")
    if c.suffixes and path.exists() and not path.is_file():  # a link to a device, a FIFO: never replaced
        raise FieldError(key, f"{value} is {file_kind(path.stat().st_mode)}, not a regular file; expected a file path")
    folder = path.parent if c.suffixes else path
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise FieldError(key, f"cannot write {value}: {folder} is a file, not a folder")
    problem = write_problem(folder)
    if problem:
        raise FieldError(key, f"cannot write {value}: the folder {folder} is not writable ({problem})")


def from_text(hint: Any, text: str, key: str) -> Any:
    """A command-line string as the type ``hint`` asks for (containers as inline YAML), checked."""
    s = shape(hint)
    if s.optional and text.lower() in ("none", "null", "~"):
        return None
    if s.is_config or s.is_container:
        from toolchain.config.files import parse_yaml

        return convert(hint, parse_yaml(text, key), key)
    if s.base is bool:
        words = {**dict.fromkeys(("true", "yes", "1", "on"), True), **dict.fromkeys(("false", "no", "0", "off"), False)}
        if text.lower() not in words:
            raise FieldError(key, f"expected {describe(s)}, got {text!r}")
        return convert(hint, words[text.lower()], key)
    if s.base in (int, float) or (typing.get_origin(s.base) is Literal and not isinstance(s.args[0], str)):
        number_type = s.base if s.base in (int, float) else type(s.args[0])
        try:
            value = number_type(text)
        except ValueError:
            raise FieldError(key, f"expected {describe(s)}, got {text!r}") from None
        return convert(hint, value, key)
    return convert(hint, text, key)
