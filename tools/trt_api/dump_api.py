"""Write the Python API of one TensorRT bindings wheel as JSON: classes, members, enum values, signatures.

The bindings are imported against stub engine libraries (see make.sh), so nothing in them can run,
but every name and every pybind11 signature is NVIDIA's own. tests/fakes builds a fake ``tensorrt``
module per version from these dumps, and tests/deploy/engine/test_real_api.py runs our TensorRT code
against each.

Usage: python dump_api.py DIR_WITH_tensorrt_bindings > tensorrt-VERSION.json

Format: ``{"__version__": V, "module": {NAME: ENTRY}}`` where a class ENTRY is ``{"kind": "class" |
"enum", "init": SIG, "members": {MEMBER: SIG}, "values": [...] (enums)}`` and any other attribute is
``{"kind": TYPE_NAME, "signature": SIG}``. SIG is the pybind11 signature line of a callable (the
overloads of an overloaded one joined by " | "), "" for properties, constants and nested types.
"""

import inspect
import json
import sys


def signature(member: object) -> str:
    """The signature line(s) pybind11 writes at the top of a callable's docstring."""
    doc = getattr(member, "__doc__", None) or ""
    lines = [line.strip() for line in doc.splitlines() if "(" in line and ")" in line]
    if not lines:
        return ""
    # an overloaded function documents itself as f(*args, **kwargs), then "1. f(...) -> T", "2. f(...) -> T"
    numbered = [line.split(". ", 1)[1] for line in lines if line[:1].isdigit() and ". " in line[:4]]
    if "(*args, **kwargs)" in lines[0] and numbered:
        return " | ".join(numbered)
    return lines[0]


def class_entry(cls: type) -> dict:
    """Members of a bindings class (dunders dropped, except __init__) with their signatures."""
    members = {}
    for name in sorted(dir(cls)):
        if name.startswith("__") and name != "__init__":
            continue
        try:
            value = getattr(cls, name)
        except Exception:  # noqa: BLE001 - a property of a class that cannot be read without an instance
            value = None
        members[name] = signature(value) if callable(value) else ""
    entry = {"kind": "class", "members": members, "init": signature(cls.__init__)}
    if hasattr(cls, "__members__"):
        entry["kind"] = "enum"
        entry["values"] = sorted(cls.__members__)
    return entry


def dump(trt) -> dict:
    """The whole module: every public attribute, classes with their members."""
    api = {"__version__": trt.__version__, "module": {}}
    for name in sorted(dir(trt)):
        if name.startswith("__"):
            continue
        obj = getattr(trt, name)
        if inspect.isclass(obj):
            api["module"][name] = class_entry(obj)
        else:
            api["module"][name] = {"kind": type(obj).__name__, "signature": signature(obj) if callable(obj) else ""}
    return api


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1])
    import tensorrt_bindings

    json.dump(dump(tensorrt_bindings), sys.stdout, indent=1, sort_keys=True)
