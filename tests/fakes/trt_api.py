"""TensorRT's real Python API, read from the committed dumps (tests/data/trt_api, tools/trt_api/make.sh).

The dumps hold pybind11 signature lines such as
``create_network(self: tensorrt_bindings.tensorrt.Builder, flags: int = 0) -> tensorrt_bindings.tensorrt.INetworkDefinition``.
``parse_signatures`` turns one into ``Signature`` objects and ``Signature.bind`` checks a call against
it the way pybind11 does: argument count, keyword names, and the types we can check without the
library (ints, strings, bools, buffers, sequences, and TensorRT's own classes and enums).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DUMPS = Path(__file__).resolve().parents[1] / "data" / "trt_api"
PREFIX = "tensorrt_bindings.tensorrt."
NO_CONSTRUCTOR = "Initialize self."  # pybind11's docstring for a class without __init__


def dump_versions() -> list[str]:
    """Versions with a committed dump, oldest first: ``["8.6.1", "10.0.1", ...]``."""
    names = [p.name[len("tensorrt-") : -len(".json")] for p in DUMPS.glob("tensorrt-*.json")]
    return sorted(names, key=lambda v: tuple(int(x) for x in v.split(".")))


def find_version(prefix: str) -> str:
    """The dumped version that ``prefix`` names: ``"10.8"`` -> ``"10.8.0.43"``."""
    matches = [v for v in dump_versions() if v == prefix or v.startswith(prefix + ".")]
    if len(matches) != 1:
        raise ValueError(f"TensorRT version '{prefix}': expected one of {dump_versions()}")
    return matches[0]


@cache
def load_dump(version: str) -> dict:
    """The dump of one version: ``{"__version__": ..., "module": {...}}``."""
    return json.loads((DUMPS / f"tensorrt-{version}.json").read_text())


def short_type(text: str) -> str:
    """``tensorrt_bindings.tensorrt.ITensor`` -> ``ITensor``; other types unchanged."""
    return text.strip().replace(PREFIX, "")


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split at ``sep`` outside brackets and ``<...>`` default reprs."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>" and depth:
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    has_default: bool
    default: str
    positional_only: bool
    keyword_only: bool


@dataclass(frozen=True)
class Signature:
    """One overload: its parameters (``self`` dropped) and its return type."""

    text: str
    params: tuple[Param, ...]
    returns: str
    varargs: bool

    def bind(self, args: tuple, kwargs: dict, module) -> str | None:
        """``None`` when the call matches this overload, else why not."""
        if self.varargs:
            return None
        positional = [p for p in self.params if not p.keyword_only]
        if len(args) > len(positional):
            return f"{len(args)} positional arguments, at most {len(positional)} accepted"
        bound = dict(zip([p.name for p in positional], args))
        for key, value in kwargs.items():
            param = next((p for p in self.params if p.name == key), None)
            if param is None or param.positional_only:
                return f"no keyword argument '{key}'"
            if key in bound:
                return f"'{key}' given twice"
            bound[key] = value
        for param in self.params:
            if param.name not in bound:
                if not param.has_default:
                    return f"missing argument '{param.name}'"
                continue
            value = bound[param.name]
            if value is None and param.default == "None":
                continue
            if not accepts(param.type, value, module):
                return f"argument '{param.name}': expected {short_type(param.type)}, got {type(value).__name__}"
        return None


def _param(text: str, positional_only: bool, keyword_only: bool) -> Param:
    head, equals, default = text.partition(" = ")
    name, _, type_ = head.partition(":")
    name = name.strip()
    unnamed = re.fullmatch(r"arg\d+", name) is not None  # pybind11 without py::arg: positional only
    return Param(name, type_.strip(), bool(equals), default.strip(), positional_only or unnamed, keyword_only)


def _parse_one(text: str) -> Signature:
    open_at = text.index("(")
    depth, close_at = 0, -1
    for i in range(open_at, len(text)):
        depth += text[i] in "([{<"
        depth -= text[i] in ")]}>"
        if depth == 0:
            close_at = i
            break
    inside, rest = text[open_at + 1 : close_at], text[close_at + 1 :]
    returns = rest.split("->", 1)[1].strip() if "->" in rest else "None"
    raw = _split_top(inside)
    if any(r.startswith("*args") for r in raw):
        return Signature(text, (), returns, True)
    params, keyword_only = [], False
    for i, part in enumerate(raw):
        if part == "/":
            params = [Param(p.name, p.type, p.has_default, p.default, True, False) for p in params]
            continue
        if part == "*":
            keyword_only = True
            continue
        if i == 0 and part.split(":")[0].strip() == "self":
            continue
        params.append(_param(part, False, keyword_only))
    return Signature(text, tuple(params), returns, False)


@cache
def parse_signatures(name: str, text: str) -> tuple[Signature, ...]:
    """Every overload of ``name`` in a dump's signature text (overloads are joined by `` | ``)."""
    pieces = re.split(r" \| (?=" + re.escape(name) + r"\()", text)
    return tuple(_parse_one(piece) for piece in pieces if "(" in piece)


DIMS_TYPES = {"Dims", "Dims2", "Dims3", "Dims4", "DimsHW", "tuple", "list"}


def _is_int(value) -> bool:
    return isinstance(value, int) or (hasattr(type(value), "__index__") and not isinstance(value, float))


def _is_buffer(value) -> bool:
    try:
        memoryview(value)
    except TypeError:
        return False
    return True


def _sequence_of(inner: str, value, module) -> bool:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        return False
    return all(accepts(inner, item, module) for item in value)


def accepts(type_text: str, value, module) -> bool:
    """Whether pybind11 would convert ``value`` to the declared C++ parameter type (unknown types: yes)."""
    t = short_type(type_text)
    match = re.fullmatch(r"(?:typing\.)?(?:List|list|collections\.abc\.Sequence|Sequence)\[(.*)\]", t)
    if match:
        return _sequence_of(match.group(1), value, module)
    if t in ("int", "typing.SupportsInt"):
        return _is_int(value) and not isinstance(value, str)
    if t in ("float", "typing.SupportsFloat"):
        return isinstance(value, (int, float)) and not isinstance(value, bool) or _is_int(value)
    if t == "bool":
        return isinstance(value, (bool, int))
    if t == "str":
        return isinstance(value, str)
    if t in ("buffer", "typing_extensions.Buffer", "collections.abc.Buffer"):
        return _is_buffer(value)
    if t in DIMS_TYPES:
        dims = getattr(module, "Dims", None)
        return (dims is not None and isinstance(value, dims)) or _sequence_of("int", value, module)
    cls = module.fake_class(t) if "." not in t else None
    if cls is None:
        return True  # a type the dump cannot resolve (capsule, C++ parser types, nested enums): not checked
    return isinstance(value, cls) or module.structurally_is(value, t)
