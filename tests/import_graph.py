"""The import statements of the ``atdata`` package, read with ``ast`` (nothing is imported).

Shared by the boundary tests: ``test_module_boundaries`` (names taken from another module are in
its ``__all__``) and ``test_layer_order`` (a module imports only from its own layer or below).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "src" / "atdata"


@dataclass(frozen=True)
class Import:
    """One imported name: ``from <source> import <name>`` (``name`` is None for ``import x``)."""

    module: str  # the importing module
    line: int
    source: str  # the module named in the statement, resolved to an absolute dotted name
    name: str | None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (packages by their ``__init__``)."""
    return {module_name(p): p for p in sorted(PACKAGE_ROOT.rglob("*.py"))}


@cache
def tree(module: str) -> ast.Module:
    path = modules()[module]
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if modules()[module].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str) -> list[Import]:
    """Every import in ``module`` of something inside the package: top level, inside functions,
    under ``TYPE_CHECKING`` alike."""
    found: list[Import] = []
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "atdata":
                    found.append(Import(module, node.lineno, alias.name, None))
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            if source.split(".")[0] == "atdata":
                for alias in node.names:
                    found.append(Import(module, node.lineno, source, alias.name))
    return found


def owning_module(dotted: str) -> str | None:
    """The module that ``dotted`` (a module or a name in one) lives in."""
    while dotted:
        if dotted in modules():
            return dotted
        dotted = dotted.rpartition(".")[0]
    return None


def dunder_all(module: str) -> list[str] | None:
    """The literal ``__all__`` of ``module``, or None when it has none."""
    for node in tree(module).body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            value = node.value
            assert value is not None
            names = ast.literal_eval(value)
            return list(names)
    return None


def is_private(module: str) -> bool:
    """A module whose dotted name has a ``_x`` part (``__init__``/``__main__`` are not private)."""
    return any(p.startswith("_") and not p.startswith("__") for p in module.split("."))
