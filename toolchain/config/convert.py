"""Values into the types their fields ask for: a value from YAML, a flag or Python converted and
checked (``convert``), a whole config built from a mapping (``build``, which converts each field),
and a config instance checked field by field (``check_fields``, first in every ``__post_init__``).

A field's type is the whole contract: ``Annotated[float, Range(gt=0)]`` is checked the same way
whether the value comes from YAML, a flag or Python, and the same words go into ``--help`` and into
the error.

Example:
    >>> @dataclass(frozen=True)
    ... class StepConfig:
    ...     '''Attributes:
    ...         lr0: Base learning rate.'''
    ...     lr0: PositiveFloat = 0.01
    ...     def __post_init__(self) -> None:
    ...         check_fields(self)
    >>> StepConfig(lr0=-1)  # FieldError: lr0: expected a number > 0, got -1
    >>> build(StepConfig, {"lr0": "x"}, "train")  # FieldError: train.lr0: expected a number > 0, got 'x'
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from base.errors import ToolchainError
from toolchain.config.checks import check
from toolchain.config.field_types import FieldError, Shape, describe, hints, shape

T = TypeVar("T")

NULL_WORDS = ("none", "null", "~")


def check_fields(obj: object) -> None:
    """Check every field of a config instance against its type (call first in ``__post_init__``).

    Reads made while an instance is constructed are its own checks, not uses of its settings (the
    field walk in the tests counts only reads after construction).
    """
    for f in dataclasses.fields(obj):
        convert(hints(type(obj))[f.name], getattr(obj, f.name), f.name)


def convert(hint: Any, value: Any, key: str) -> Any:
    """``value`` (from YAML, a flag or Python) as the type ``hint`` asks for, checked; else ``FieldError``."""
    s = shape(hint)
    if value is None:
        if s.optional:
            return None
        raise FieldError(key, f"expected {describe(s)}, got null")
    value = _typed(s, value, key)
    for c in s.checks:
        check(c, s, value, key)
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
        return number_from_text(hint, value, key)
    return _any(hint, value, key)


def _any(hint: Any, value: Any, key: str) -> Any:
    return value if hint is Any else convert(hint, value, key)


def number_from_text(hint: Any, text: str, key: str) -> Any:
    """A number written as text (a flag, a JSON mapping key) as the type ``hint`` asks for (an int, a
    float or a ``Literal`` of numbers; ``null`` where it is optional), checked."""
    s = shape(hint)
    if s.optional and text.lower() in NULL_WORDS:
        return None
    number_type = s.base if s.base in (int, float) else type(s.args[0])
    try:
        value = number_type(text)
    except ValueError:
        raise FieldError(key, f"expected {describe(s)}, got {text!r}") from None
    return convert(hint, value, key)


def build(cls: type[T], raw: Mapping, key: str = "") -> T:
    """A checked instance of ``cls`` from a complete mapping (``defaults`` merged with the user's).

    Raises:
        FieldError: An unknown or missing key, or a value its type does not allow, named by its
            dotted path below ``key``.
    """
    if not isinstance(raw, Mapping):
        raise FieldError(key, f"expected a mapping, got {raw!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise FieldError(_dotted(key, str(unknown[0])), f"unknown key; allowed here: {names}")
    precheck = getattr(cls, "precheck", None)
    if precheck is not None:
        try:
            precheck(raw)
        except FieldError as exc:
            raise exc.within(key) from None
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in raw:
            kwargs[f.name] = convert(hints(cls)[f.name], raw[f.name], _dotted(key, f.name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise FieldError(_dotted(key, f.name), "required, and not given")
    try:
        return cls(**kwargs)
    except FieldError as exc:
        raise exc.within(key) from None
    except (ToolchainError, ValueError, TypeError) as exc:  # the checks of configs outside toolchain/
        message = str(exc)
        own = key.rsplit(".", 1)[-1] + ": "
        raise FieldError(key, message[len(own) :] if message.startswith(own) else message) from None


def _dotted(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key
