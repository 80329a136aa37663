"""A module's ``__all__`` is its boundary: what other atdata modules take from it is listed there,
or the module is private (a ``_name`` module, free for its neighbours to use)."""

from __future__ import annotations

import ast

from import_graph import dunder_all, imports, is_private, modules, tree


def _crossings() -> list[str]:
    bad: list[str] = []
    for module in modules():
        for imp in imports(module):
            if imp.name is None or imp.source not in modules() or imp.source == module:
                continue
            if f"{imp.source}.{imp.name}" in modules():  # `from pkg import submodule`
                continue
            if is_private(imp.source):
                continue
            exported = dunder_all(imp.source) or []
            if imp.name not in exported:
                bad.append(f"{module}:{imp.line} takes {imp.name!r} from {imp.source}")
    return bad


def test_names_taken_from_another_module_are_in_its_all() -> None:
    bad = _crossings()
    assert not bad, "names imported past a module's __all__:\n  " + "\n  ".join(bad)


def test_every_public_module_declares_its_all() -> None:
    missing = [
        m
        for m in modules()
        if not is_private(m) and not m.endswith(".__main__") and dunder_all(m) is None
    ]
    assert not missing, f"public modules without __all__: {missing}"


def test_all_names_exist_in_their_module() -> None:
    """Every name in ``__all__`` is bound in the module (defined, assigned, imported, or served
    lazily by a module ``__getattr__`` that names it)."""
    bad: list[str] = []
    for module in modules():
        exported = dunder_all(module)
        if not exported:
            continue
        bound: set[str] = set()
        lazy: set[str] = set()
        for node in ast.walk(tree(module)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                bound.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                bound.add(node.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                lazy.add(node.value)
        if "__getattr__" in bound:
            bound |= lazy
        bad += [f"{module}: {n}" for n in exported if n not in bound]
    assert not bad, f"__all__ names that the module does not bind: {bad}"
