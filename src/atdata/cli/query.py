"""``atdata query``, ``atdata manifest build`` and the field summaries ``atdata inspect`` shows.

``atdata query PATH|NAME "label == 3 and score > 0.9"`` prints the matching samples (``--count``:
how many; ``--limit N``; ``--json``). The query string is parsed by :func:`atdata.query.parse`
(a whitelist of Python expression nodes; nothing is evaluated). ``atdata manifest build``
writes ``<shard>.manifest`` beside each local shard in one streaming pass.
"""

import dataclasses
import math
from itertools import islice
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ._samples import display_value, expand_shards, infer_schema, iter_raw_samples, json_value
from ._shared import (
    JsonOption,
    ProgressBar,
    classify_target,
    emit_json,
    note,
    open_index,
    out_console,
)

if TYPE_CHECKING:
    from ..dataset import Dataset
    from ..manifest import FieldStats

__all__ = ["field_summaries", "open_target", "print_field_summaries", "register"]

_BINS = 20
_BAR = 40


def open_target(target: str) -> "Dataset[Any]":
    """A typed Dataset for ``target`` (index dataset: its schema; shards: inferred)."""
    from ..dataset import Dataset
    from ..sample import DictSample

    found = classify_target(target)
    if found.kind == "index":
        with open_index() as index:
            return index.load(found.ref)
    urls = expand_shards(target)
    first = next(iter_raw_samples(urls), None)
    schema = infer_schema(first[1]) if first is not None else None
    try:  # inferred from one sample: any field may be None in another
        relaxed = (
            None
            if schema is None
            else dataclasses.replace(
                schema,
                fields=tuple(
                    dataclasses.replace(
                        f, type=dataclasses.replace(f.type, optional=True), required=False
                    )
                    for f in schema.fields
                ),
            )
        )
        stype = relaxed.to_sample_type() if relaxed is not None else DictSample
    except Exception:
        stype = DictSample
    return Dataset(urls, stype)


def query_command(
    target: Annotated[str, typer.Argument(metavar="PATH|NAME", show_default=False)],
    expression: Annotated[
        str, typer.Argument(metavar="QUERY", help='e.g. "label == 3 and score > 0.9"')
    ],
    count: Annotated[bool, typer.Option("--count", help="Print only how many match.")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most N samples.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Samples matching QUERY (==, !=, <, <=, >, >=, in, not in, and, or, not; .between(a, b),
    .is_null()). Shards whose manifests rule the query out are not read."""
    ds = open_target(target)
    if count:
        n = ds.count(expression)
        if as_json:
            emit_json({"target": target, "query": expression, "count": n})
        else:
            out_console().print(f"{n:,}")
        return
    rows = list(islice(ds.where(expression).ordered(), limit))
    dicts = [_as_dict(s) for s in rows]
    if as_json:
        emit_json([{k: json_value(v) for k, v in d.items()} for d in dicts])
        return
    console = out_console()
    if not dicts:
        console.print(f"{target}: no sample matches {expression!r}")
        return
    table = Table(header_style="bold", title=f"{target}: {len(dicts)} match(es) of {expression}")
    names = list(dicts[0])
    for name in names:
        table.add_column(name, overflow="fold")
    for d in dicts:
        table.add_row(*(display_value(d.get(n)) for n in names))
    console.print(table)
    if len(rows) == limit:
        note(f"showing the first {limit}; --limit N for more, --count for how many")


def _as_dict(sample: Any) -> dict[str, Any]:
    to_dict = getattr(sample, "to_dict", None)
    if callable(to_dict):
        out = to_dict()
        if isinstance(out, dict):
            return out
    return dict(vars(sample))


def manifest_build_command(
    target: Annotated[str, typer.Argument(metavar="PATH|NAME", show_default=False)],
) -> None:
    """Write a manifest (<shard>.manifest: field statistics and a column block of the scalar
    fields) beside each local shard, for fast queries. One streaming pass over each shard."""
    from ..manifest.rebuild import build_manifests

    ds = open_target(target)
    stype = ds.sample_type if ds.sample_type.__name__ != "DictSample" else None
    shards = ds.shards
    total = shards.total()
    with ProgressBar("building manifests", total, unit="items") as bar:
        written = build_manifests(shards, stype, on_shard=lambda _url, n: bar.advance(n))
    out_console().print(f"wrote {len(written)} manifest(s) for {total:,} samples")


# -- summaries for ``atdata inspect`` -------------------------------------------------------------
def field_summaries(ds: "Dataset[Any]") -> tuple[dict[str, dict[str, Any]], int]:
    """Per-field summaries merged over the shards' manifests, and how many shards had one."""
    from ..manifest.load import ManifestCache

    cache = ManifestCache(ds.shards)
    merged: dict[str, dict[str, Any]] = {}
    used = 0
    for i in range(len(ds.shards)):
        m = cache.get(i)
        if m is None:
            continue
        used += 1
        for name, s in m.fields.items():
            _merge(merged.setdefault(name, {"kind": s.kind, "count": 0, "nulls": 0}), s)
    for info in merged.values():
        top = info.pop("_top", {})
        info["top"] = sorted(top.items(), key=lambda kv: -kv[1])[:5]
    return merged, used


def _merge(into: dict[str, Any], s: "FieldStats") -> None:
    into["count"] += s.count
    into["nulls"] += s.nulls
    for key, pick in (("min", min), ("max", max)):
        v = getattr(s, key)
        if v is not None:
            into[key] = v if into.get(key) is None else pick(into[key], v)
    top = into.setdefault("_top", {})
    for value, n in (s.values or dict(s.top)).items():
        top[value] = top.get(value, 0) + n


def print_field_summaries(ds: "Dataset[Any]", histogram: str | None) -> None:
    summaries, used = field_summaries(ds)
    console = out_console()
    if not summaries:
        note("no shard manifests: `atdata manifest build` writes them (field summaries, queries)")
        return
    table = Table(header_style="bold", box=None, pad_edge=False)
    for col in ("field", "kind", "count", "nulls", "min", "max", "top values"):
        table.add_column(col, overflow="fold")
    for name, info in summaries.items():
        top = ", ".join(f"{v!r} x{n}" for v, n in info["top"])
        table.add_row(
            name,
            info["kind"],
            f"{info['count']:,}",
            f"{info['nulls']:,}",
            repr(info.get("min")),
            repr(info.get("max")),
            top,
        )
    console.print()
    console.print(Text(f"Fields (from the manifests of {used} shard(s))", style="bold"))
    console.print(table)
    if histogram is not None:
        _print_histogram(ds, histogram)


def _print_histogram(ds: "Dataset[Any]", name: str) -> None:
    from ..errors import InvalidArgumentError

    values = [
        v
        for v in ds.select([name])[name]
        if isinstance(v, int | float) and not (isinstance(v, float) and math.isnan(v))
    ]
    if not values:
        raise InvalidArgumentError(f"field $.{name} has no numeric values to draw")
    lo, hi = min(values), max(values)
    width = (hi - lo) / _BINS if hi > lo else 1.0
    counts = [0] * _BINS
    for v in values:
        counts[min(_BINS - 1, int((v - lo) / width))] += 1
    peak = max(counts)
    console = out_console()
    console.print()
    console.print(Text(f"Histogram of {name} ({len(values):,} values)", style="bold"))
    for k, n in enumerate(counts):
        bar = "█" * round(_BAR * n / peak) if peak else ""
        console.print(f"{lo + k * width:>12.4g} │{bar} {n:,}")


def register(app: typer.Typer) -> None:
    app.command("query")(query_command)
    manifest = typer.Typer(
        name="manifest",
        help="Shard manifests (field statistics for queries).",
        no_args_is_help=True,
    )
    manifest.command("build")(manifest_build_command)
    app.add_typer(manifest)
