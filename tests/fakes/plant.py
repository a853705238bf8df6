"""Plant a break in our source for one test: the module's text with one edit, compiled and swapped in.

Used to prove that the real-API runs catch what they are for: an unguarded 10-only or 11-removed
TensorRT name, a wrong keyword, a call with the 12.x signature on cuda-python 11.8.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def planted(module_name: str, old: str, new: str) -> Iterator[None]:
    """Within the block, ``module_name``'s functions and classes are those of its source with ``old`` -> ``new``.

    Every loaded ``deploy`` module that imported one of them by name sees the planted one too.
    """
    module = importlib.import_module(module_name)
    source = Path(module.__file__).read_text()
    assert source.count(old) == 1, f"the text to replace occurs {source.count(old)} times in {module_name}: {old!r}"
    fresh = types.ModuleType(module_name)
    fresh.__file__ = module.__file__
    exec(compile(source.replace(old, new), module.__file__, "exec"), fresh.__dict__)  # noqa: S102 - our own source
    swaps = []
    for name, value in fresh.__dict__.items():
        original = module.__dict__.get(name)
        if getattr(value, "__module__", None) != module_name or original is None:
            continue
        for other in [m for n, m in list(sys.modules.items()) if n.startswith("deploy") and m is not None]:
            if other.__dict__.get(name) is original:
                swaps.append((other, name, original))
                setattr(other, name, value)
    try:
        yield
    finally:
        for other, name, original in swaps:
            setattr(other, name, original)
