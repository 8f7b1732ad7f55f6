"""The layers of ARCHITECTURE.md, enforced: every `import` in src/ (at module level, inside functions or
under TYPE_CHECKING alike) points to the same group or to a lower layer, never up or sideways."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# (rank, group prefixes). A module may import its own group and any group of a lower rank; groups that
# share a rank are siblings and may not import each other (training code and prediction never meet).
LAYERS: list[tuple[float, tuple[str, ...]]] = [
    (0, ("actiscope.errors", "actiscope.files", "actiscope.version")),
    (
        1,
        (
            "actiscope.run",
            "actiscope.hardware",
            "actiscope.options",
            "actiscope.data.config",
        ),
    ),
    (2, ("actiscope.data",)),
    (3, ("actiscope.models",)),
    (4, ("actiscope.package",)),
    (5, ("actiscope.engine",)),
    (5, ("actiscope.predict",)),
    (6, ("actiscope.export",)),
    (6, ("actiscope.explain",)),
    (6, ("actiscope.evaluate",)),
    (7, ("actiscope.workflows",)),
    (7, ("actiscope.tune",)),
    (8, ("actiscope.web",)),
    (8, ("actiscope.api",)),
    (9, ("actiscope.cli",)),
    (10, ("actiscope",)),  # the package root re-exports actiscope.api
]


def _group(module: str) -> tuple[float, str]:
    """The most specific group a module falls in, and its rank (`actiscope` alone is the package root)."""
    best: tuple[float, str] | None = None
    for rank, prefixes in LAYERS:
        for prefix in prefixes:
            inside = module == prefix or (prefix != "actiscope" and module.startswith(prefix + "."))
            if inside and (best is None or len(prefix) > len(best[1])):
                best = (rank, prefix)
    if best is None:
        raise AssertionError(f"{module}: not in any layer of tests/test_architecture.py; add it")
    return best


@cache
def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "actiscope").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            # `from actiscope import notebook` imports the module actiscope.notebook, not the package root
            modules = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in _modules()]
            names += [(m, node.lineno) for m in modules] or [(target, node.lineno)]
    return [(n, line) for n, line in names if n == "actiscope" or n.startswith("actiscope.")]


def test_every_import_points_down_or_within_its_group() -> None:
    wrong = []
    for module, path in _modules().items():
        rank, group = _group(module)
        for target, line in _imports(module, path):
            target_rank, target_group = _group(target)
            if target_group == group or target_rank < rank:
                continue
            wrong.append(
                f"{path.relative_to(SRC)}:{line}: {module} ({group}, layer {rank}) imports "
                f"{target} ({target_group}, layer {target_rank})"
            )
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(wrong)


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        _group(module)


@pytest.mark.parametrize(
    ("module", "target", "allowed"),
    [
        ("actiscope.engine.fit", "actiscope.export", False),
        ("actiscope.predict", "actiscope.engine.fit", False),
        ("actiscope.workflows", "actiscope.engine.fit", True),
        ("actiscope.data.split", "actiscope.models", False),
        ("actiscope.cli", "actiscope.web", True),
        ("actiscope.web.services", "actiscope.cli", False),
        ("actiscope.cli.train", "actiscope.api", True),
        ("actiscope.api", "actiscope.web", False),
        ("actiscope.package", "actiscope", False),
    ],
)
def test_the_rule_itself(module: str, target: str, allowed: bool) -> None:
    """The check above would catch what the layers forbid (a guard against a rule that passes anything)."""
    (rank, group), (target_rank, target_group) = _group(module), _group(target)
    assert (target_group == group or target_rank < rank) is allowed
