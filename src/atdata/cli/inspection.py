"""``atdata inspect PATH|@local/name[@v]`` and ``atdata preview PATH|@local/name``.

``inspect`` reports shards, sample counts, sizes, checksums and the schema. For shards named by a
path, counts and checksums come from the offset-index sidecars (a tar is scanned only when it has
none, and the output says so) and the schema is inferred from the first sample. For an index
dataset everything comes from its record, without reading a shard.

``preview`` prints the first samples as a table; arrays show as dtype and shape, bytes as their
length. ``at://`` and ``@handle/name`` arguments go to the atmosphere commands.
"""

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ._media import ImageInfo, thumbnail_or_problem
from ._samples import (
    decode_fields,
    display_value,
    expand_shards,
    infer_schema,
    iter_raw_samples,
    json_value,
    summarize_shard,
)
from ._shared import (
    Target,
    atmosphere_function,
    classify_target,
    emit_json,
    human_size,
    note,
    open_index,
    out_console,
)
from .schemas import SchemaInfo, schema_table

if TYPE_CHECKING:
    from ..index import DatasetEntry, Index
    from ..schema import Schema

__all__ = ["inspect_command", "preview_command", "register"]

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
TargetArgument = Annotated[
    str,
    typer.Argument(
        help="Shards (path, directory, glob, brace pattern, URL), a dataset in the index "
        "(@local/name[@version], or just name[@version]), or at://... / @handle/name.",
        metavar="PATH|NAME",
        show_default=False,
    ),
]


# -- inspect ------------------------------------------------------------------------------------
def inspect_command(
    target: TargetArgument,
    as_json: JsonOption = False,
    histogram: Annotated[
        str | None,
        typer.Option("--histogram", metavar="FIELD", help="Draw a numeric field's histogram."),
    ] = None,
) -> None:
    """Shards, sample counts, schema, sizes and checksums of a dataset.

    Counts and checksums come from the shards' offset-index sidecars (a shard without one is
    scanned) or, for a dataset in the index, from its record; a schema not recorded is inferred
    from the first sample.
    """
    found = classify_target(target)
    if found.kind == "atmosphere":
        atmosphere_function("inspect_remote", f"inspect {target}")(target, as_json=as_json)
    elif found.kind == "index":
        _inspect_entry(found, as_json)
    else:
        _inspect_shards(target, as_json)
    if not as_json and found.kind != "atmosphere":  # field summaries from the shard manifests
        from .query import open_target, print_field_summaries

        print_field_summaries(open_target(target), histogram)


def _layout_text(schema: "Schema | None") -> str:
    if schema is not None and schema.layout == "members":
        return "members (one tar member per field: WebDataset style)"
    return "msgpack (one .msgpack member per sample)"


def _inspect_shards(text: str, as_json: bool) -> None:
    urls = expand_shards(text)
    summaries = [summarize_shard(u) for u in urls]
    first = next(iter_raw_samples(urls), None)  # reads up to the first sample only
    schema = infer_schema(first[1]) if first is not None else None
    count = sum(s.count for s in summaries)
    size = sum(s.size for s in summaries)
    scanned = [s.url for s in summaries if not s.indexed]
    if as_json:
        emit_json(
            {
                "kind": "shards",
                "target": text,
                "count": count,
                "size": size,
                "schema": schema.to_dict() if schema is not None else None,
                "schema_inferred": True,
                "layout": schema.layout if schema is not None else None,
                "shards": [s.to_dict() for s in summaries],
            }
        )
        return
    console = out_console()
    console.print(Text.assemble(("Shards ", "bold"), text), soft_wrap=True)
    _facts(
        [
            ("samples", f"{count:,}"),
            ("shards", f"{len(summaries)}"),
            ("size", human_size(size)),
            ("layout", _layout_text(schema)),
            (
                "counts from",
                "offset indexes (.idx sidecars)"
                if not scanned
                else f"a full scan of {len(scanned)} shard(s) without an .idx sidecar",
            ),
        ]
    )
    if schema is not None:
        console.print()
        console.print(Text("Schema (inferred from the first sample)", style="bold"))
        console.print(schema_table(SchemaInfo(schema, text, inferred=True)))
    else:
        console.print(Text("no samples to infer a schema from", style="yellow"))
    console.print()
    console.print(_shard_table([(s.url, s.count, s.size, s.sha256) for s in summaries]))
    if scanned:
        note(
            f"{len(scanned)} shard(s) have no offset index (.idx); they were scanned, and their "
            "sha256 is unknown. Shards written by atdata have one."
        )


def _inspect_entry(target: Target, as_json: bool) -> None:
    with open_index() as index:
        entry = index.get(target.ref)
        record = index.get_schema(entry.schema_ref) if entry.schema_ref else None
        versions = [e.version for e in index.history(entry.name)]
        labels = [lb.name for lb in index.labels if lb.target == entry.ref]
        where = _store_root(index)
    if as_json:
        emit_json(
            {
                "kind": "dataset",
                "name": entry.name,
                "version": entry.version,
                "ref": entry.ref,
                "uri": entry.uri,
                "cid": entry.cid,
                "created_at": entry.created_at,
                "description": entry.description,
                "tags": list(entry.tags),
                "license": entry.license,
                "metadata": dict(entry.metadata),
                "stored": entry.stored,
                "count": entry.count,
                "size": entry.size,
                "schema_ref": entry.schema_ref,
                "schema": record.schema.to_dict() if record is not None else None,
                "layout": record.schema.layout if record is not None else None,
                "versions": versions,
                "labels": labels,
                "shards": [s.to_dict() for s in entry.shards],
            }
        )
        return
    console = out_console()
    console.print(
        Text.assemble(("Dataset ", "bold"), (entry.ref, "bold cyan"), ("  " + entry.uri, "dim")),
        soft_wrap=True,
    )
    facts = [
        ("samples", f"{entry.count:,}"),
        ("shards", str(len(entry.shards))),
        ("size", human_size(entry.size)),
        ("versions", ", ".join(map(str, versions)) + f" (this is {entry.version})"),
        ("created", entry.created_at),
        ("cid", entry.cid),
        ("shards live", _where(entry, where)),
    ]
    if record is not None:
        facts.append(("layout", _layout_text(record.schema)))
    if labels:
        facts.append(("labels", ", ".join(labels)))
    if entry.description:
        facts.append(("description", entry.description))
    if entry.tags:
        facts.append(("tags", ", ".join(entry.tags)))
    if entry.license:
        facts.append(("license", entry.license))
    _facts(facts)
    console.print()
    if record is not None:
        console.print(
            Text.assemble(
                ("Schema ", "bold"), f"{record.name}@{record.version}  ", (record.ref, "dim")
            )
        )
        console.print(schema_table(SchemaInfo(record.schema, record.ref, record.ref, record.cid)))
    else:
        console.print(Text("no schema recorded (samples load as DictSample)", style="yellow"))
    console.print()
    console.print(_shard_table([(s.url, s.count, s.size, s.checksum.digest) for s in entry.shards]))


def _store_root(index: "Index") -> str | None:
    store = index.repository().store
    root = getattr(store, "root", None)
    return str(root) if root is not None else None


def _where(entry: "DatasetEntry", store_root: str | None) -> str:
    if entry.stored:
        return f"in the index's store ({store_root})" if store_root else "in the index's store"
    return "where they were registered (not managed by the index)"


def _facts(rows: list[tuple[str, str]]) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    out_console().print(table)


def _shard_table(rows: list[tuple[str, int, int, str | None]]) -> Table:
    table = Table(header_style="bold", box=None, pad_edge=False, title_justify="left")
    table.add_column("shard", overflow="fold")
    table.add_column("samples", justify="right")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("sha256", no_wrap=True)
    for url, count, size, sha in rows:
        table.add_row(url, f"{count:,}", human_size(size), (sha[:16] + "…") if sha else "-")
    return table


# -- preview ------------------------------------------------------------------------------------
def preview_command(
    target: TargetArgument,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many samples.")] = 5,
    as_json: JsonOption = False,
    thumbnails: Annotated[
        Path | None,
        typer.Option(
            "--thumbnails",
            help="Write a PNG thumbnail (at most 128x128) of every image into this directory.",
        ),
    ] = None,
) -> None:
    """The first samples as a table (arrays as dtype and shape, images as format and size).

    Arrays are shown as their dtype and shape, images (JPEG/PNG/WebP) as format, width x height
    and mode read from their header, and bytes as their length, never the bytes.
    """
    found = classify_target(target)
    schema: Schema | None = None
    if found.kind == "atmosphere":
        atmosphere_function("preview_remote", f"preview {target}")(
            target, limit=limit, as_json=as_json
        )
        return
    if found.kind == "index":
        with open_index() as index:
            entry = index.get(found.ref)
            if entry.schema_ref is not None:
                schema = index.get_schema(entry.schema_ref).schema
            urls = entry.urls
            title = entry.ref
    else:
        urls = expand_shards(target)
        title = target
    rows: list[tuple[str, dict[str, Any]]] = []
    for key, fields in iter_raw_samples(urls):
        decoded = decode_fields(fields, schema)
        if thumbnails is not None:
            _add_thumbnails(decoded, thumbnails, f"{len(rows):04d}-{key}")
        rows.append((key, decoded))
        if len(rows) >= limit:
            break
    _show_samples(title, rows, schema, as_json)


def _add_thumbnails(fields: dict[str, Any], directory: Path, stem: str) -> None:
    """Every image field gets a thumbnail file; its path joins the field's shown facts."""
    for name, value in list(fields.items()):
        if isinstance(value, ImageInfo):
            where = thumbnail_or_problem(value, directory, f"{stem}-{name}")
            fields[name] = dataclasses.replace(value, thumbnail=where)


def _show_samples(
    title: str, rows: list[tuple[str, dict[str, Any]]], schema: "Schema | None", as_json: bool
) -> None:
    """Decoded sample rows as JSON (``as_json``) or as a table titled ``title``."""
    if as_json:
        emit_json(
            [
                {"__key__": key, **{k: json_value(v) for k, v in fields.items()}}
                for key, fields in rows
            ]
        )
        return
    _print_samples(title, rows, schema)


def _print_samples(
    title: str, rows: list[tuple[str, dict[str, Any]]], schema: "Schema | None"
) -> None:
    console = out_console()
    if not rows:
        console.print(f"{title}: no samples")
        return
    names: list[str] = [f.name for f in schema.fields] if schema is not None else []
    for _key, fields in rows:
        names += [n for n in fields if n not in names]
    table = Table(header_style="bold", title=f"{title}: first {len(rows)} sample(s)")
    table.add_column("key", style="dim", no_wrap=True)
    for name in names:
        table.add_column(name, overflow="fold")
    for key, fields in rows:
        table.add_row(key, *(display_value(fields[n]) if n in fields else "" for n in names))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_command)
    app.command("preview")(preview_command)
