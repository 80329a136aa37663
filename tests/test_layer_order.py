"""The package is layered: a module imports only from its own layer or a lower one, at the top
of the file, inside functions and under ``TYPE_CHECKING`` alike, and no module inside the package
imports the package root. The order below is the one drawn in ``docs/architecture.md``; change
both together.
"""

from __future__ import annotations

from import_graph import imports, modules, owning_module

# Bottom first. An entry names a module, or a package and everything under it.
LAYERS: list[tuple[str, list[str]]] = [
    ("data", ["atdata.lexicons", "atdata._redact", "atdata._clock", "atdata._fs", "atdata._home"]),
    ("errors", ["atdata.errors", "atdata._optional"]),
    ("net", ["atdata.net"]),
    ("localdev", ["atdata.localdev"]),
    (
        "schema",
        [
            "atdata.schema",
            "atdata._npy",
            "atdata._msgpack_view",
            "atdata._msgpack_parts",
            "atdata.media",
        ],
    ),
    (
        "samples",
        [
            "atdata.dict_sample",
            "atdata.codec",
            "atdata.codec_batch",
            "atdata.members",
            "atdata.sample",
            "atdata.samplegen",
            "atdata.stubgen",
        ],
    ),
    ("sources", ["atdata.sources"]),
    ("shards", ["atdata.shards", "atdata.manifest"]),
    ("views", ["atdata.lens", "atdata.batch", "atdata.plan", "atdata.query", "atdata.queryplan"]),
    (
        "datasets",
        [
            "atdata.dataset",
            "atdata.loader",
            "atdata.planreader",
            "atdata.slots",
            "atdata.groupslots",
            "atdata.writing",
            "atdata.torch",
            "atdata.hf_datasets",
            "atdata.ray_data",
            "atdata.ray_ingest",
        ],
    ),
    ("stores", ["atdata.stores"]),
    ("atmosphere", ["atdata.atmosphere"]),
    ("discovery", ["atdata.discovery"]),
    ("hub", ["atdata.hub"]),
    ("derive", ["atdata.derive"]),
    ("index", ["atdata.index"]),
    ("dataset_refs", ["atdata.dataset_refs"]),
    ("apps", ["atdata.cli", "atdata.demo", "atdata.diagnose", "atdata.testing"]),
    ("package", ["atdata"]),
]


def layer_of(module: str) -> int:
    best: tuple[int, int] | None = None  # (length of the matching entry, layer)
    for rank, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            inside = module.startswith(entry + ".") and entry != "atdata"  # the root: itself only
            if (module == entry or inside) and (best is None or len(entry) > best[0]):
                best = (len(entry), rank)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")
    return best[1]


def _upward_edges() -> list[tuple[str, str, int]]:
    edges: list[tuple[str, str, int]] = []
    for module in modules():
        if module == "atdata":
            continue
        for imp in imports(module):
            target = owning_module(imp.source + (f".{imp.name}" if imp.name else ""))
            if target is None or target == module:
                continue
            if layer_of(target) > layer_of(module):
                edges.append((module, target, imp.line))
    return edges


def test_every_module_has_a_layer() -> None:
    for module in modules():
        layer_of(module)


def test_modules_import_only_their_layer_or_lower() -> None:
    bad = [
        f"{m}:{line} imports {t} ({LAYERS[layer_of(m)][0]} -> {LAYERS[layer_of(t)][0]})"
        for m, t, line in _upward_edges()
    ]
    assert not bad, "upward imports:\n  " + "\n  ".join(bad)


def test_no_module_imports_the_package_root() -> None:
    bad = [
        f"{m}:{imp.line}"
        for m in modules()
        if m != "atdata"
        for imp in imports(m)
        if imp.source == "atdata" and imp.name is not None and f"atdata.{imp.name}" not in modules()
    ]
    bad += [
        f"{m}:{imp.line}"
        for m in modules()
        for imp in imports(m)
        if imp.source == "atdata" and imp.name is None
    ]
    assert not bad, f"imports of the package root from inside it: {bad}"


def test_the_architecture_doc_draws_the_same_order() -> None:
    """docs/architecture.md lists the layers top first, each as a `layer:` line."""
    from import_graph import PACKAGE_ROOT

    doc = (PACKAGE_ROOT.parent.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    drawn = [
        line.split("`")[1]
        for line in doc.splitlines()
        if line.startswith("| `") and line.count("`") >= 2
    ]
    assert drawn == [name for name, _ in reversed(LAYERS)]


def _cycles() -> list[frozenset[str]]:
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for module in modules():
        for imp in imports(module):
            target = owning_module(imp.source + (f".{imp.name}" if imp.name else ""))
            if target is not None and target != module:
                graph[module].add(target)

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in graph[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reachable = {m: reach(m) for m in graph}
    cycles = {frozenset({m} | {n for n in reachable[m] if m in reachable[n]}) for m in graph}
    return [c for c in cycles if len(c) > 1]


def test_no_import_cycles() -> None:
    found = [sorted(c) for c in _cycles()]
    assert not found, f"import cycles: {found}"
