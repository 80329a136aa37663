"""``atdata inspect PATH|NAME`` and ``atdata preview PATH|NAME``, for every form of argument.

The argument is resolved once (:func:`atdata.cli.targets.open_target`): shards by path or URL, a
dataset of the local index (``@local/name[@v]``), or a published one (``@handle/name[@v]``,
``at://``). ``inspect`` turns what each form knows into one :class:`Report` and one function
prints it; ``preview`` reads the first samples through one loop whatever the form.

``inspect`` reports shards, sample counts, sizes, checksums and the schema. For shards named by a
path, counts and checksums come from the offset-index sidecars (a tar is scanned only when it has
none, and the output says so) and the schema is inferred from the first sample. For an index
dataset everything comes from its record, without reading a shard; for a published one from its
entry and schema records. ``inspect`` of an ``at://`` schema or lens record shows that record,
of a bare ``@handle`` the account's listing (as ``ls @handle``).

``preview`` prints the first samples as a table; arrays show as dtype and shape, bytes as their
length. Published shards are verified as they are read.
"""

import contextlib
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from ._media import ImageInfo, thumbnail_or_problem
from ._remote import label_text, reader, record_kind, storage_kind
from ._samples import decode_fields, display_value, infer_schema, iter_raw_samples, json_value
from ._samples import summarize_shard as _summarize
from ._shared import (
    JsonOption,
    classify_target,
    emit_json,
    human_size,
    note,
    out_console,
    print_facts,
)
from .schemas import SchemaInfo, schema_table
from .targets import Resolved, open_target, remote_shards

if TYPE_CHECKING:
    from ..atmosphere import AtmosphereClient
    from ..schema import Schema

__all__ = ["Report", "inspect_command", "preview_command", "register"]

TargetArgument = Annotated[
    str,
    typer.Argument(
        help="Shards (path, directory, glob, brace pattern, URL), a dataset in the index "
        "(@local/name[@version], or just name[@version]), or at://... / @handle/name.",
        metavar="PATH|NAME",
        show_default=False,
    ),
]


@dataclass
class Report:
    """What ``inspect`` shows: ``data`` for ``--json``; else the header, lines under it, the
    facts, then ``body`` (renderables, ``""`` for a blank line) and notes on stderr."""

    data: dict[str, Any]
    header: Text
    lines: list[Text] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    body: list[RenderableType] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def show(self, as_json: bool) -> None:
        if as_json:
            emit_json(self.data)
            return
        console = out_console()
        console.print(self.header, soft_wrap=True)
        for line in self.lines:
            console.print(line, soft_wrap=True)
        if self.facts:
            print_facts(self.facts)
        for block in self.body:
            console.print(block, soft_wrap=isinstance(block, Text | str))
        for text in self.notes:
            note(text)


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
    if classify_target(target).kind == "atmosphere":
        from ..atmosphere.records import LENS, SCHEMA

        kind = record_kind(target)
        if kind == "repo":
            from .publishing import ls_remote

            ls_remote(target, as_json=as_json)
            return
        if kind in (SCHEMA, LENS):
            with reader() as client:
                report = (_schema_record if kind == SCHEMA else _lens_record)(client, target)
            report.show(as_json)
            return
    # other records (and bare repositories, handled above) get the resolver's own message
    with open_target(target, "inspect", datasets_only=False) as found:
        report = _REPORTS[found.kind](found)
    report.show(as_json)
    if not as_json and found.kind != "atmosphere":  # field summaries from the shard manifests
        from .query import open_target as query_target
        from .query import print_field_summaries

        print_field_summaries(query_target(target), histogram)


def _layout_text(schema: "Schema | None") -> str:
    if schema is not None and schema.layout == "members":
        return "members (one tar member per field: WebDataset style)"
    return "msgpack (one .msgpack member per sample)"


def _shards_report(found: Resolved) -> Report:
    summaries = [_summarize(u) for u in found.urls]
    first = next(iter_raw_samples(found.urls), None)  # reads up to the first sample only
    schema = infer_schema(first[1]) if first is not None else None
    count = sum(s.count for s in summaries)
    size = sum(s.size for s in summaries)
    scanned = [s.url for s in summaries if not s.indexed]
    text = found.text
    data = {
        "kind": "shards",
        "target": text,
        "count": count,
        "size": size,
        "schema": schema.to_dict() if schema is not None else None,
        "schema_inferred": True,
        "layout": schema.layout if schema is not None else None,
        "shards": [s.to_dict() for s in summaries],
    }
    report = Report(data, Text.assemble(("Shards ", "bold"), text))
    report.facts = [
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
    if schema is not None:
        report.body += [
            "",
            Text("Schema (inferred from the first sample)", style="bold"),
            schema_table(SchemaInfo(schema, text, inferred=True)),
        ]
    else:
        report.body += ["", Text("no samples to infer a schema from", style="yellow")]
    report.body += ["", _shard_table([(s.url, s.count, s.size, s.sha256) for s in summaries])]
    if scanned:
        report.notes.append(
            f"{len(scanned)} shard(s) have no offset index (.idx); they were scanned, and their "
            "sha256 is unknown. Shards written by atdata have one."
        )
    return report


def _entry_report(found: Resolved) -> Report:
    index, entry, record = found.index, found.entry, found.schema_record
    assert index is not None and entry is not None
    versions = [e.version for e in index.history(entry.name)]
    labels = [lb.name for lb in index.labels if lb.target == entry.ref]
    root = getattr(index.repository().store, "root", None)
    data = {
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
    header = Text.assemble(
        ("Dataset ", "bold"), (entry.ref, "bold cyan"), ("  " + entry.uri, "dim")
    )
    if entry.stored:
        where = f"in the index's store ({root})" if root is not None else "in the index's store"
    else:
        where = "where they were registered (not managed by the index)"
    report = Report(data, header)
    report.facts = [
        ("samples", f"{entry.count:,}"),
        ("shards", str(len(entry.shards))),
        ("size", human_size(entry.size)),
        ("versions", ", ".join(map(str, versions)) + f" (this is {entry.version})"),
        ("created", entry.created_at),
        ("cid", entry.cid),
        ("shards live", where),
    ]
    if record is not None:
        report.facts.append(("layout", _layout_text(record.schema)))
    if labels:
        report.facts.append(("labels", ", ".join(labels)))
    report.facts += _described(entry.description, entry.tags, entry.license)
    if record is not None:
        report.body += [
            "",
            Text.assemble(
                ("Schema ", "bold"), f"{record.name}@{record.version}  ", (record.ref, "dim")
            ),
            schema_table(SchemaInfo(record.schema, record.ref, record.ref, record.cid)),
        ]
    else:
        report.body += [
            "",
            Text("no schema recorded (samples load as DictSample)", style="yellow"),
        ]
    rows = [(s.url, s.count, s.size, s.checksum.digest) for s in entry.shards]
    report.body += ["", _shard_table(rows)]
    return report


def _remote_report(found: Resolved) -> Report:
    resolved = found.remote
    assert resolved is not None
    ref, entry, label, size = found.text, resolved.entry, resolved.label, resolved.entry.size
    shards = remote_shards(resolved)
    schema = resolved.schema
    data = {
        "kind": "atmosphere-dataset",
        "ref": ref,
        "uri": str(resolved.uri),
        "did": resolved.uri.did,
        "name": entry.name,
        "version": label.value.version if label is not None else None,
        "label": str(label.uri) if label is not None else None,
        "description": entry.description,
        "tags": list(entry.tags),
        "license": entry.license,
        "metadata": dict(entry.metadata) if entry.metadata else None,
        "created_at": entry.created_at,
        "count": size.samples if size else None,
        "size": size.bytes if size else None,
        "storage": storage_kind(entry.storage),
        "schema_uri": str(resolved.schema_uri),
        "schema": schema.to_dict(),
        "shards": [s.to_dict() for s in shards],
    }
    header = Text.assemble(("Dataset ", "bold"), (entry.name, "bold cyan"), ("  " + ref, "dim"))
    report = Report(data, header)
    report.facts = [
        ("uri", str(resolved.uri)),
        ("samples", f"{size.samples:,}" if size and size.samples is not None else "-"),
        ("shards", f"{len(shards)} ({storage_kind(entry.storage)})"),
        ("size", human_size(size.bytes if size else None)),
        ("created", entry.created_at),
    ]
    if label is not None:
        report.facts.append(("label", f"{label_text(label.value)}  {label.uri}"))
    report.facts += _described(entry.description, entry.tags, entry.license)
    title = f"{schema.name}@{schema.version}"
    rows = [(s.shown, None, s.size, s.sha256) for s in shards]
    report.body += [
        "",
        Text.assemble(("Schema ", "bold"), f"{title}  ", (str(resolved.schema_uri), "dim")),
        schema_table(SchemaInfo(schema, title)),
        "",
        _shard_table(rows, counts=False, missing_sha="- (checked by CID)"),
    ]
    return report


_REPORTS = {"shards": _shards_report, "index": _entry_report, "atmosphere": _remote_report}


def _schema_record(client: "AtmosphereClient", ref: str) -> Report:
    stored = client.get_schema(ref)
    schema = stored.value.to_schema(where=str(stored.uri))
    data = {
        "kind": "atmosphere-schema",
        "uri": str(stored.uri),
        "cid": stored.cid,
        "name": schema.name,
        "version": schema.version,
        "created_at": stored.value.created_at,
        "schema": schema.to_dict(),
    }
    title = f"{schema.name}@{schema.version}"
    report = Report(
        data, Text.assemble(("Schema ", "bold"), (title, "bold cyan"), f"  {stored.uri}")
    )
    if schema.description:
        report.lines.append(Text(schema.description, style="dim"))
    report.body.append(schema_table(SchemaInfo(schema, title)))
    return report


def _lens_record(client: "AtmosphereClient", ref: str) -> Report:
    stored = client.get_lens(ref)
    lens = stored.value
    data = {
        "kind": "atmosphere-lens",
        "uri": str(stored.uri),
        "cid": stored.cid,
        "name": lens.name,
        "description": lens.description,
        "source_schema": lens.source_schema,
        "target_schema": lens.target_schema,
        "getter": lens.getter.to_dict(),
        "putter": lens.putter.to_dict(),
    }
    report = Report(
        data, Text.assemble(("Lens ", "bold"), (lens.name, "bold cyan"), f"  {stored.uri}")
    )
    report.facts = [
        ("from", lens.source_schema),
        ("to", lens.target_schema),
        ("getter", f"{lens.getter.repository} @ {lens.getter.commit}: {lens.getter.path}"),
        ("putter", f"{lens.putter.repository} @ {lens.putter.commit}: {lens.putter.path}"),
        ("description", lens.description or "-"),
    ]
    report.notes.append("lens code is only referenced; atdata never fetches or runs it")
    return report


def _described(description: str | None, tags: Any, license: str | None) -> list[tuple[str, str]]:
    facts = [("description", description)] if description else []
    if tags:
        facts.append(("tags", ", ".join(tags)))
    if license:
        facts.append(("license", license))
    return facts


def _shard_table(
    rows: Sequence[tuple[str, int | None, int | None, str | None]],
    *,
    counts: bool = True,
    missing_sha: str = "-",
) -> Table:
    table = Table(header_style="bold", box=None, pad_edge=False, title_justify="left")
    table.add_column("shard", overflow="fold")
    if counts:
        table.add_column("samples", justify="right")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("sha256", no_wrap=True)
    for url, count, size, sha in rows:
        cells = [url] + ([f"{count or 0:,}"] if counts else [])
        table.add_row(*cells, human_size(size), (sha[:16] + "…") if sha else missing_sha)
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
    rows: list[tuple[str, dict[str, Any]]] = []
    with open_target(target, "preview") as found:
        samples = iter_raw_samples(found.sources())
        with contextlib.closing(samples):
            for key, fields in samples:
                decoded = decode_fields(fields, found.schema)
                if thumbnails is not None:
                    _add_thumbnails(decoded, thumbnails, f"{len(rows):04d}-{key}")
                rows.append((key, decoded))
                if len(rows) >= limit:
                    break
    show_samples(found.title, rows, found.schema, as_json)


def _add_thumbnails(fields: dict[str, Any], directory: Path, stem: str) -> None:
    """Every image field gets a thumbnail file; its path joins the field's shown facts."""
    for name, value in list(fields.items()):
        if isinstance(value, ImageInfo):
            where = thumbnail_or_problem(value, directory, f"{stem}-{name}")
            fields[name] = dataclasses.replace(value, thumbnail=where)


def show_samples(
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
