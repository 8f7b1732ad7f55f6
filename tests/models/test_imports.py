"""The models package's imports point one way: no module imports another that (through any chain)
imports it back, not even inside a function, and each module imports cleanly whichever comes first."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import actiscope.models

PACKAGE = "actiscope.models"
FOLDER = Path(actiscope.models.__file__).parent
MODULES = sorted(f"{PACKAGE}.{p.stem}" if p.stem != "__init__" else PACKAGE for p in FOLDER.glob("*.py"))


def _imports(module: str) -> set[str]:
    """The package's modules that `module` imports anywhere in its text (top level or in a function)."""
    path = FOLDER / ("__init__.py" if module == PACKAGE else f"{module.rpartition('.')[2]}.py")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (node.module or "") if node.level == 0 else ".".join(filter(None, [PACKAGE, node.module]))
            for alias in node.names:  # `from actiscope.models import image` imports the submodule
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return found & set(MODULES) - {module}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle in `graph` as the modules along it (first repeated last), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph[node]):
            if cycle := visit(target, [*path, node]):
                return cycle
        done.add(node)
        return None

    return next((c for node in sorted(graph) if (c := visit(node, [])) is not None), None)


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_among_the_models_modules() -> None:
    graph = {module: _imports(module) for module in MODULES}
    assert graph[f"{PACKAGE}.registry"] >= {f"{PACKAGE}.image", f"{PACKAGE}.video"}  # the walk sees imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_each_module_imports_cleanly_when_it_comes_first() -> None:
    """A fresh interpreter imports each module first (the package's others forgotten between rounds),
    then the rest: a circle would fail on a partly initialised module in one of these orders. One
    interpreter, not one per module, so that torch is imported once."""
    script = f"""
import sys
modules = {MODULES!r}
for first in modules:
    for name in [m for m in sys.modules if m == {PACKAGE!r} or m.startswith({PACKAGE + "."!r})]:
        del sys.modules[name]
    for name in [first, *(m for m in modules if m != first)]:
        __import__(name)
    print(first, "ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [word for m in MODULES for word in (m, "ok")]
