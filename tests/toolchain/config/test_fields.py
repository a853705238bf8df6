"""``toolchain.config.fields`` is the one import of a config class; the package's imports go one way."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import toolchain.config
from toolchain.config import convert, docstrings, field_types, fields, machine

PACKAGE = Path(toolchain.config.__file__).parent
OWN = ("base", "deploy", "toolchain", "benchmarks")


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module imported, at the top level) of every import of our own packages in ``path``."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out += [(n, id(node) in top) for n in names if n.split(".")[0] in OWN]
    return out


def test_the_config_modules_import_each_other_one_way_at_the_top_only():
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        found = _imports(path)
        assert all(top for _, top in found), (path.name, [m for m, top in found if not top])
        graph[path.stem] = {m.rsplit(".", 1)[-1] for m, _ in found if m.startswith("toolchain.config.")}
    graphlib.TopologicalSorter(graph).prepare()  # CycleError on a circle
    assert not any("fields" in deps for deps in graph.values())  # the facade is on top


def test_the_cycle_check_can_fail():
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter({"fields": {"tree"}, "tree": {"files"}, "files": {"fields"}}).prepare()


def test_every_name_comes_from_the_module_of_its_job():
    homes = (field_types, convert, docstrings, machine)
    for name in fields.__all__:
        assert any(getattr(home, name, None) is getattr(fields, name) for home in homes), name
    users_import = {"Decay", "Device", "EpochOrNever", "ExistingPath", "FieldError", "Fraction", "ImageSize",
                    "NonNegativeFloat", "NonNegativeInt", "Pattern", "PositiveFloat", "PositiveInt", "Range",
                    "Writable", "check_fields"}  # fmt: skip
    assert users_import <= set(fields.__all__)
