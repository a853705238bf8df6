"""Configs as trees: the defaults of a config class as a plain mapping, a partial mapping merged
recursively over them, a checked instance built from the result (``build``, from ``convert``), and
a config as plain values again (``to_dict``).

Sections (nested configs) merge key by key, so ``input: {percentile: 99.9}`` keeps the rest of the
``input`` section's defaults; any other value (a number, a list, a free mapping) replaces.

Example:
    >>> tree = merge(QuantConfig, defaults(QuantConfig), {"input": {"percentile": 99.9}})
    >>> build(QuantConfig, tree).input.calibrator
    'histogram_percentile'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from toolchain.config.convert import build, check_fields
from toolchain.config.field_types import FieldError, hints, shape

T = TypeVar("T")


def to_dict(obj: Any) -> Any:
    """Plain YAML/JSON values of a config (dataclasses as mappings, tuples as lists).

    Reads through ``__dict__``: writing a config out is not counted as using its fields.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(obj.__dict__[f.name]) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def replace(obj: T, **changes: Any) -> T:
    """A copy of a config with some fields changed, checked again."""
    return type(obj)(**{**obj.__dict__, **changes})


def section(cls: type, key: str) -> type | None:
    """The config class of field ``key`` of ``cls`` when it is a section, else ``None``."""
    field_type = hints(cls).get(key)
    s = shape(field_type) if field_type is not None else None
    return s.base if s is not None and s.is_config else None


def defaults(cls: type) -> dict:
    """Every field's default as plain values; a section without a default is expanded; a required
    plain field is absent."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = to_dict(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = to_dict(f.default_factory())
        elif section(cls, f.name):
            out[f.name] = defaults(section(cls, f.name))
    return out


def merge(
    cls: type, base: dict, over: Mapping, origins: dict | None = None, source: str = "", prefix: str = ""
) -> dict:
    """``over`` merged into ``base`` (in place, and returned): sections key by key, other values replace.

    ``origins`` (dotted key -> ``source``) records where each value came from, for error messages.
    """
    for key, value in over.items():
        sub = section(cls, key)
        dotted = f"{prefix}{key}"
        if sub is not None and isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(sub, base[key], value, origins, source, dotted + ".")
        else:
            base[key] = value
            if origins is not None:
                origins[dotted] = source
    return base


def from_dict(cls: type[T], raw: Mapping, where: str = "") -> T:
    """``build`` over the defaults: a partial mapping keeps every default it does not change."""
    if not isinstance(raw, Mapping):
        raise FieldError(where, f"expected a mapping, got {raw!r}")
    return build(cls, merge(cls, defaults(cls), raw))


def leaves(cls: type, prefix: str = "") -> Iterator[tuple[str, type, str]]:
    """Every settable value below ``cls``: (dotted key, owning config class, field name)."""
    for f in dataclasses.fields(cls):
        sub = section(cls, f.name)
        if sub is not None:
            yield from leaves(sub, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", cls, f.name


def lookup(cls: type, dotted: str) -> tuple[type, str]:
    """The config class and field name of a dotted key."""
    *path, name = dotted.split(".")
    for part in path:
        cls = section(cls, part)
    return cls, name


__all__ = ["build", "check_fields", "defaults", "from_dict", "leaves", "lookup", "merge", "replace", "to_dict"]
