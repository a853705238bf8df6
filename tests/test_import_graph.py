"""The import graph of the project's packages: no circle between files (function-local imports
included), and a function-local import of our own modules only with a comment saying why it is lazy."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("base", "toolchain", "deploy", "benchmarks")


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.AST, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The project modules an import statement names (``from a import b`` names ``a.b`` where that is a module)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join(package + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    out = []
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            out.append(name)
    return out


def _line_above_imports(lines: list[str], lineno: int) -> str:
    """The line above the block of import lines that holds line ``lineno`` (1-based): its comment, if any."""
    i = lineno - 2
    while i >= 0 and lines[i].strip().startswith(("from ", "import ")):
        i -= 1
    return lines[i].strip() if i >= 0 else ""


def import_graph(root: Path, packages: tuple[str, ...]) -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """Module -> the project modules it imports, and the function-local imports as (file, line, the line above)."""
    files = {_module_name(p, root): p for pkg in packages for p in (root / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    local: list[tuple[str, int, str]] = []
    for module, path in files.items():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        inside = {id(c) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for c in ast.walk(f)}  # fmt: skip
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets = _targets(node, module, path.name == "__init__.py", set(files))
                graph[module].update(targets)
                if targets and id(node) in inside:
                    local.append((f"{path.relative_to(root)}", node.lineno, _line_above_imports(lines, node.lineno)))
    return graph, local


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_circle_of_imports_between_files():
    graph, _ = import_graph(REPO, PACKAGES)
    assert len(graph) > 100
    assert cycles(graph) == []


def test_a_function_local_import_of_our_modules_says_why():
    _, local = import_graph(REPO, PACKAGES)
    unexplained = [f"{file}:{line}" for file, line, above in local if not above.startswith("#")]
    assert not unexplained, f"function-local imports of our own modules without a comment above: {unexplained}"
    assert len(local) <= 8  # only the lazy ones (ultralytics through placement, torch through the exporter)


def test_the_graph_finds_a_planted_circle_and_a_local_import(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import x\n")
    (pkg / "b.py").write_text("def x():\n    from pkg import a\n    return a\n")
    graph, local = import_graph(tmp_path, ("pkg",))
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
    assert local == [("pkg/b.py", 2, "def x():")]
