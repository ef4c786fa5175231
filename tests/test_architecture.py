"""The shape of the code: one-way imports, no private names across packages, no import hidden in a
function, small modules, a short ``fit``, and every module saying what it owns."""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "padless"

# data -> nn -> train -> (export, cli): a module may import only modules of its own level or below.
LEVELS = {
    "padless.errors": 0, "padless.io": 0, "padless.runtime": 0,
    "padless.data": 1,
    "padless.datasets": 2, "padless.plots": 2,
    "padless.nn": 3,
    "padless.train": 4,
    "padless.export": 5,
    "padless.models": 6, "padless.layers": 6,
    "padless.optimizers": 6, "padless.losses": 6, "padless.metrics": 6, "padless.callbacks": 6,
    "padless.recipes": 7, "padless.bench": 7,
    "padless.demo": 8,
    "padless.cli": 9, "padless.__main__": 9,
    "padless": 10,
}
MAX_LINES = 420


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(ROOT.rglob("*.py")):
        rel = p.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _level(name: str) -> int:
    best = max((k for k in LEVELS if name == k or name.startswith(k + ".")), key=len)
    return LEVELS[best]


def _package(name: str) -> str:
    """The top-level subpackage a module belongs to (``padless.train`` for ``padless.train.trainer``)."""
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else name


def _imports(path: Path, module: str) -> list[tuple[str, list[str], bool, int]]:
    """(imported module, imported names, inside a function?, line) for every padless import."""
    tree = ast.parse(path.read_text())
    out = []
    funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    in_func = {id(n) for f in funcs for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    type_only = {id(n) for g in ast.walk(tree) if isinstance(g, ast.If) and "TYPE_CHECKING" in ast.unparse(g.test)
                 for n in ast.walk(g)}  # imports for annotations only: no runtime edge
    pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("padless"):
                    out.append((a.name, [], id(node) in in_func, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("padless"):
                out.append((mod, [a.name for a in node.names], id(node) in in_func, node.lineno))
    return out


def _edges() -> list[tuple[str, str, list[str], bool, int]]:
    edges = []
    for name, path in MODULES.items():
        for target, names, in_func, line in _imports(path, name):
            # "from padless.data import collate" may name a submodule: resolve it
            resolved = [f"{target}.{n}" if f"{target}.{n}" in MODULES else target for n in names] or [target]
            for r in set(resolved):
                edges.append((name, r, names, in_func, line))
    return edges


EDGES = _edges()


def test_every_import_points_down():
    bad = [f"{a}:{line} imports {b} (level {_level(b)} > {_level(a)})" for a, b, _, _, line in EDGES
           if _level(b) > _level(a)]
    assert not bad, "\n".join(bad)


def test_no_import_inside_a_function():
    bad = [f"{a}:{line} imports {b} inside a function" for a, b, _, in_func, line in EDGES if in_func]
    assert not bad, "\n".join(bad)


def test_no_private_names_across_packages():
    bad = []
    for a, b, names, _, line in EDGES:
        if _package(a) == _package(b):
            continue  # a package's own private helpers
        priv = [n for n in names if n.startswith("_") and n != "__version__"]
        if priv or any(p.startswith("_") and not p.startswith("__") for p in b.split(".")):
            bad.append(f"{a}:{line} imports private {b} {priv}")
    assert not bad, "\n".join(bad)


def test_no_cycles_between_modules():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for a, b, _, _, _ in EDGES:
        if b in MODULES and a != b and not (MODULES[a].name == "__init__.py" and b.startswith(a + ".")):
            graph[a].add(b)
    # package __init__ files re-export their children: skip child -> own package edges
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for n in graph[m]:
            if MODULES[n].name == "__init__.py" and m.startswith(n + "."):
                continue
            if seen.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if not seen.get(n):
                visit(n)
        stack.pop()
        seen[m] = 2

    for m in graph:
        if not seen.get(m):
            visit(m)


def test_modules_are_small():
    big = {name: n for name, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, big


def test_fit_is_short():
    from padless.models.keras_model import KerasModel

    lines = inspect.getsource(KerasModel.fit).splitlines()
    body = [ln for ln in lines if ln.strip() and not ln.strip().startswith(("#",))]
    assert len(body) <= 60, len(body)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_says_what_it_owns(name):
    if name.endswith("__main__"):
        return
    module = importlib.import_module(name)
    doc = inspect.getdoc(module) or ""
    assert "Owns" in doc and "Does not own" in doc, name
    assert hasattr(module, "__all__"), name
    for public in module.__all__:
        obj = getattr(module, public)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), f"{name}.{public} has no docstring"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if not m.endswith("__main__") and m != "padless.cli"))
def test_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0, name
