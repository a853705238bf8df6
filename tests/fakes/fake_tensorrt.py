"""A fake ``tensorrt`` module per version, generated from the dump of NVIDIA's real bindings.

Every class, member, enum value and module function of the version exists, and nothing else: an
unknown name raises ``AttributeError`` as the real module does, a call that matches none of a
function's pybind11 overloads (count, keyword names, checkable types) raises ``TypeError``, and a
call returns an object of its declared return type, so chained calls go on with the real API.
What objects *do* (parse an ONNX, build, run) comes from ``tests/fakes/trt_behaviour.py``; a member
without a behaviour returns its type's neutral value (``True`` for a status, ``0``, a new object).

Each attribute read by code under ``deploy/`` or by Polygraphy (which our builder calls) is recorded in
``CallLog`` with its file and line: the number of TensorRT call sites a run executes, ours and Polygraphy's.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import types
from pathlib import Path

from tests.fakes.trt_api import NO_CONSTRUCTOR, load_dump, parse_signatures, short_type

REPO = Path(__file__).resolve().parents[2]
DEPLOY = str(REPO / "deploy") + os.sep
POLYGRAPHY = f"{os.sep}polygraphy{os.sep}"
DATA_TYPE_ALIASES = {"float32": "FLOAT", "float16": "HALF", "bfloat16": "BF16", "int8": "INT8", "int32": "INT32",
                     "int64": "INT64", "bool": "BOOL", "uint8": "UINT8", "fp8": "FP8", "int4": "INT4", "fp4": "FP4",
                     "e8m0": "E8M0"}  # fmt: skip


class MissingBehaviourError(AssertionError):
    """Our code read something the fake has no value for: give it a behaviour in trt_behaviour.py."""


class CallLog:
    """API names read from code under deploy/: ``sites[(file, line)] = {api names}``."""

    def __init__(self) -> None:
        self.sites: dict[tuple[str, int], set[str]] = {}
        self.functions: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()

    def record(self, api: str, frame) -> None:
        filename = frame.f_code.co_filename
        if filename.startswith(DEPLOY):
            key = (os.path.relpath(filename, REPO), frame.f_lineno)
        elif POLYGRAPHY in filename:  # NVIDIA's layer, called by ours: "polygraphy/backend/trt/config.py"
            key = (filename[filename.index(POLYGRAPHY) + 1 :], frame.f_lineno)
        else:
            return
        with self._lock:
            self.sites.setdefault(key, set()).add(api)
            self.functions[key] = frame.f_code.co_name

    def names(self) -> set[str]:
        return set().union(*self.sites.values()) if self.sites else set()


class Opaque:
    """A value of a type the dump cannot build (C++ parser types, capsules); ``str()`` gives its text."""

    def __init__(self, type_name: str, text: str = "") -> None:
        self.type_name, self.text = type_name, text

    def __str__(self) -> str:
        return self.text or f"<{self.type_name}>"


class FakeConstant:
    """A class-level constant (``Logger.WARNING``) or nested value whose type the dump does not describe."""

    def __init__(self, owner: str, name: str, value: int) -> None:
        self.owner, self.name, self.value = owner, name, value

    def __int__(self) -> int:
        return self.value

    __index__ = __int__

    def __repr__(self) -> str:
        return f"<{self.owner}.{self.name}: {self.value}>"


class FakeMeta(type):
    """Records class-level reads (``trt.BuilderFlag.INT8``) by deploy code."""

    def __getattribute__(cls, name: str):
        value = type.__getattribute__(cls, name)  # AttributeError for a name this version does not have
        if name[:1] != "_":
            api = type.__getattribute__(cls, "__dict__").get("_fake_api")
            if api is not None:
                api.log.record(f"{type.__getattribute__(cls, '__name__')}.{name}", sys._getframe(1))
        return value


class FakeObject(metaclass=FakeMeta):
    """Base of every generated class; instances keep behaviour state in ``_fake_state``."""

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        object.__setattr__(obj, "_fake_state", {})
        return obj

    def __init__(self, *args, **kwargs) -> None:
        generated = _generated(type(self))
        generated._fake_api.construct(generated, self, args, kwargs)

    def __getattribute__(self, name: str):
        value = object.__getattribute__(self, name)
        if name[:1] != "_":
            generated = _generated(type(self))
            if name in generated._fake_members and not _overridden(type(self), generated, name):
                generated._fake_api.log.record(f"{generated.__name__}.{name}", sys._getframe(1))
        return value

    def __setattr__(self, name: str, value) -> None:
        generated = _generated(type(self))
        if type(self) is generated and name not in generated._fake_members:
            raise AttributeError(f"'tensorrt.{generated.__name__}' object has no attribute '{name}'")
        if name in generated._fake_members:
            generated._fake_api.log.record(f"{generated.__name__}.{name}", sys._getframe(1))
        object.__setattr__(self, name, value)

    def __del__(self) -> None:
        generated = _generated(type(self))
        hook = generated._fake_api.behaviours.get(f"{generated.__name__}.__del__")
        if hook is not None:
            hook(generated._fake_api, self)


def _generated(cls: type) -> type:
    for klass in cls.__mro__:
        if "_fake_api" in klass.__dict__:
            return klass
    raise TypeError(f"{cls} is not a fake TensorRT class")


def _overridden(cls: type, generated: type, name: str) -> bool:
    return any(name in klass.__dict__ for klass in cls.__mro__[: cls.__mro__.index(generated)])


class FakeEnum(FakeObject):
    """Base of generated enums: values with ``name``/``value``, ``int()``, equality within the enum."""

    def __init__(self, *args, **kwargs) -> None:
        raise TypeError("fake enums are built by the fake module only")

    name = property(lambda self: object.__getattribute__(self, "_fake_state")["name"])
    value = property(lambda self: object.__getattribute__(self, "_fake_state")["value"])

    def __int__(self) -> int:
        return self.value

    __index__ = __int__

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.value == self.value

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.value))

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self.name}: {self.value}>"

    def __str__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


class FakeTensorRT:
    """Builds and owns one fake module: its classes, behaviours, call log and failure switches.

    Args:
        version: A dumped version (``"10.3.0"``).
        env: What behaviours need besides the module: the fake CUDA driver, DLA cores, options.
        behaviours: ``{"Class.member": fn(api, self, *args)}``; properties ``"Class.member"`` get
            ``fn(api, self)`` and setters ``"Class.member="`` get ``fn(api, self, value)``.
        version_string: ``trt.__version__`` to report instead of the dump's (an older release
            of the same API, e.g. 8.5 on the 8.6 dump).
    """

    def __init__(self, version: str, env, behaviours: dict, version_string: str | None = None) -> None:
        self.dump = load_dump(version)["module"]
        self.env, self.behaviours = env, behaviours
        self.version = version_string or load_dump(version)["__version__"]
        self.log = CallLog()
        self.fail: set[str] = set()
        self.classes: dict[str, type] = {}
        for name, entry in self.dump.items():
            if entry["kind"] in ("class", "enum"):
                self.classes[name] = self._make_class(name, entry)
        self.module = self._make_module()

    # classes ------------------------------------------------------------------------------------
    def _make_class(self, name: str, entry: dict) -> type:
        members = {m for m in entry["members"] if not m.startswith("_")}
        if entry["kind"] == "enum":
            cls = FakeMeta(name, (FakeEnum,), {"_fake_api": self, "_fake_members": frozenset(members)})
            values = {}
            for i, value_name in enumerate(entry["values"]):
                value = object.__new__(cls)
                object.__setattr__(value, "_fake_state", {"name": value_name, "value": i})
                values[value_name] = value
                type.__setattr__(cls, value_name, value)
            type.__setattr__(cls, "__members__", values)
            return cls
        bases = (FakeObject, bytes) if name == "IHostMemory" else (FakeObject,)
        namespace = {"_fake_api": self, "_fake_members": frozenset(members), "__module__": "tensorrt"}
        for member, sig in entry["members"].items():
            if member.startswith("_"):
                continue
            if sig:
                namespace[member] = self._make_method(name, member, sig)
            elif member.isupper():
                namespace[member] = FakeConstant(name, member, len(namespace))
            elif member[:1].isupper() and "_" not in member:  # a nested type (Logger.Severity)
                namespace[member] = type(member, (), {"__module__": f"tensorrt.{name}"})
            else:
                namespace[member] = self._make_property(name, member)
        namespace.update(self._sequence_protocol(name))
        return FakeMeta(name, bases, namespace)

    def _sequence_protocol(self, cls_name: str) -> dict:
        """``len(network)`` and ``network[i]``: pybind11 methods of the real classes that the dumps leave out
        (they list no dunder), given where a behaviour says what they return (``Class.__len__``)."""
        api, methods = self, {}
        if f"{cls_name}.__len__" in self.behaviours:
            methods["__len__"] = lambda obj: api.behaviours[f"{cls_name}.__len__"](api, obj)
        if f"{cls_name}.__getitem__" in self.behaviours:
            methods["__getitem__"] = lambda obj, i: api.behaviours[f"{cls_name}.__getitem__"](api, obj, i)
        return methods

    def _make_method(self, cls_name: str, name: str, sig: str):
        api, key = self, f"{cls_name}.{name}"
        if not sig.startswith(f"{name}(self"):

            def static(*args, **kwargs):
                return api.call(key, name, sig, None, args, kwargs)

            return staticmethod(static)

        def method(self, *args, **kwargs):
            return api.call(key, name, sig, self, args, kwargs)

        method.__name__ = name
        return method

    def _make_property(self, cls_name: str, name: str) -> property:
        api, key = self, f"{cls_name}.{name}"

        def fget(obj):
            state = object.__getattribute__(obj, "_fake_state")
            if name in state:
                return state[name]
            if key in api.behaviours:
                return api.behaviours[key](api, obj)
            raise MissingBehaviourError(f"fake tensorrt: no value for {key}; give it a behaviour in trt_behaviour.py")

        def fset(obj, value) -> None:
            if f"{key}=" in api.behaviours:
                api.behaviours[f"{key}="](api, obj, value)
            object.__getattribute__(obj, "_fake_state")[name] = value

        return property(fget, fset)

    # calls --------------------------------------------------------------------------------------
    def call(self, key: str, name: str, sig: str, obj, args: tuple, kwargs: dict):
        """Check a call against the real overloads, then run its behaviour or return its type's value."""
        overloads = parse_signatures(name, sig)
        reasons = []
        for overload in overloads:
            why = overload.bind(args, kwargs, self)
            if why is None:
                break
            reasons.append(why)
        else:
            supported = "\n".join(f"    {i + 1}. {o.text}" for i, o in enumerate(overloads))
            raise TypeError(
                f"{name}(): incompatible function arguments ({'; '.join(reasons)}). The following argument types "
                f"are supported:\n{supported}\nInvoked with: {args!r}, {kwargs!r}"
            )
        if key in self.fail:
            return self.failure(overload.returns)
        behaviour = self.behaviours.get(key)
        if behaviour is not None:
            return behaviour(self, obj, *args, **kwargs) if obj is not None else behaviour(self, *args, **kwargs)
        return self.default(overload.returns)

    def construct(self, cls: type, obj, args: tuple, kwargs: dict) -> None:
        init = self.dump[cls.__name__]["init"]
        if not init or init.startswith(NO_CONSTRUCTOR):
            raise TypeError(f"tensorrt.{cls.__name__}: No constructor defined!")
        self.call(f"{cls.__name__}.__init__", "__init__", init, obj, args, kwargs)
        object.__getattribute__(obj, "_fake_state")["__initialized__"] = True

    def default(self, returns: str):
        """The neutral value of a declared return type."""
        t = short_type(returns)
        simple = {"None": None, "bool": True, "int": 0, "float": 0.0, "str": ""}
        if t in simple:
            return simple[t]
        if re.match(r"(typing\.)?(List|list)\[", t) or t == "list":
            return []
        if t in self.classes:
            cls = self.classes[t]
            return next(iter(cls.__members__.values())) if issubclass(cls, FakeEnum) else self.new(t)
        return Opaque(t)

    @staticmethod
    def failure(returns: str):
        """What a failed call returns: ``False`` for a status, ``None`` for an object, ``-1`` for an index."""
        t = short_type(returns)
        return {"bool": False, "int": -1}.get(t)

    def new(self, class_name: str, data: bytes = b"", /, **state):
        """An instance made by TensorRT itself (no constructor check), with behaviour state."""
        cls = self.classes[class_name]
        obj = bytes.__new__(cls, data) if class_name == "IHostMemory" else object.__new__(cls)
        object.__setattr__(obj, "_fake_state", dict(state))
        return obj

    @staticmethod
    def state(obj) -> dict:
        return object.__getattribute__(obj, "_fake_state")

    def fake_class(self, name: str) -> type | None:
        return self.classes.get(name)

    def structurally_is(self, value, name: str) -> bool:
        """An object of another class with every member of ``name`` (TensorRT's subclasses: Logger is an ILogger)."""
        if not isinstance(value, FakeObject) or isinstance(value, FakeEnum):
            return False
        return set(self.classes[name]._fake_members) <= set(_generated(type(value))._fake_members)

    # module -------------------------------------------------------------------------------------
    def _make_module(self) -> types.ModuleType:
        api = self
        mod = types.ModuleType("tensorrt")
        mod.__version__ = self.version
        for name, entry in self.dump.items():
            if name in self.classes:
                setattr(mod, name, self.classes[name])
            elif entry["kind"] in ("function", "builtin_function_or_method"):
                setattr(mod, name, self._make_function(name, entry.get("signature", "")))
            elif entry["kind"] == "DataType" and "DataType" in self.classes:
                setattr(mod, name, getattr(self.classes["DataType"], DATA_TYPE_ALIASES.get(name, name), None))
            elif entry["kind"] == "module":
                setattr(mod, name, sys.modules.get(name) or types.ModuleType(name))
            else:
                setattr(mod, name, FakeConstant("tensorrt", name, 0))

        class Module(types.ModuleType):
            def __getattribute__(self, attr: str):
                value = super().__getattribute__(attr)
                if attr[:1] != "_" or attr == "__version__":
                    api.log.record(attr, sys._getframe(1))
                return value

        mod.__class__ = Module
        return mod

    def _make_function(self, name: str, sig: str):
        api = self

        def function(*args, **kwargs):
            if sig:
                return api.call(name, name, sig, None, args, kwargs)
            behaviour = api.behaviours.get(name)
            if behaviour is None:
                raise MissingBehaviourError(f"fake tensorrt: no behaviour for tensorrt.{name}")
            return behaviour(api, *args, **kwargs)

        function.__name__ = name
        return function
