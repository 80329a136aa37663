"""The network layer is the bottom of the remote paths: ``atdata.net`` imports nothing of atdata
but errors/_redact/_optional, and ``atdata.sources`` never imports the shard layer or anything
above it -- not even inside a function (imports are read from the source, not the runtime)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "atdata"


def _imports(path: Path) -> set[str]:
    """The atdata modules ``path`` imports anywhere in its body, as dotted names."""
    package = ["atdata", *path.relative_to(SRC).with_suffix("").parts[:-1]]
    if path.name == "__init__.py":
        package = ["atdata", *path.relative_to(SRC).parts[:-1]]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("atdata")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("atdata"):
                out.add(name)
                out |= {f"{name}.{a.name}" for a in node.names}
    return out


def _modules(layer: str) -> list[Path]:
    return sorted((SRC / layer).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("net"), ids=lambda p: p.name)
def test_net_imports_only_the_base(path: Path) -> None:
    allowed = ("atdata.net", "atdata.errors", "atdata._redact", "atdata._optional")
    bad = {m for m in _imports(path) if not m.startswith(allowed) and m != "atdata"}
    assert not bad, f"{path.name} imports {sorted(bad)} from above the network layer"


@pytest.mark.parametrize("path", _modules("sources"), ids=lambda p: p.name)
def test_sources_never_import_the_layers_above(path: Path) -> None:
    above = (
        "atdata.shards",
        "atdata.dataset",
        "atdata.loader",
        "atdata.atmosphere",
        "atdata.index",
    )
    bad = {m for m in _imports(path) if m.startswith(above)}
    assert not bad, f"{path.name} imports {sorted(bad)} from a layer above sources"
