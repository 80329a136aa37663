"""``atdata schema show REF|PATH``, ``diff A B``, ``ls`` and ``stub REF [-o module.py]``.

A schema argument is a stored schema (``atdata://local/schema/Frame@1.0.0``, ``Frame@1.0.0``,
``Frame`` for the newest version), a dataset in the index (``@local/name[@v]``: its recorded
schema), or shards (a path, glob, brace pattern or URL: the schema is inferred from the first
sample, with each array's dtype and exact shape).

``diff`` compares field by field and exits 0 when the schemas are the same, 1 when they differ.
When one side is inferred, the comparison is loose where inference cannot know better: a
declared ``None`` dimension or dtype matches any, optional/required is not compared, nested
samples match maps, and field order is ignored.
"""

import os
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import typer
from rich.table import Table
from rich.text import Text

from ..schema import Field, FieldType, Schema
from ._samples import expand_shards, infer_schema, iter_raw_samples
from ._shared import CliError, JsonOption, classify_target, emit_json, open_index, out_console

__all__ = [
    "SchemaInfo",
    "describe_type",
    "diff_schemas",
    "register",
    "resolve_schema",
    "schema_table",
]

_SCHEMA_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(@(\d+\.\d+\.\d+|latest))?\Z")

schema_app = typer.Typer(
    name="schema",
    help="Show, compare and list sample schemas.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


# -- resolving ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SchemaInfo:
    """A schema with where it came from: ``label`` names it for people, ``ref`` is its index
    reference (None when inferred), ``inferred`` says it was read off a sample."""

    schema: Schema
    label: str
    ref: str | None = None
    cid: str | None = None
    inferred: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "ref": self.ref,
            "cid": self.cid,
            "inferred": self.inferred,
            "schema": self.schema.to_dict(),
        }


def infer_from_shards(text: str) -> SchemaInfo:
    """The schema inferred from the first sample of the shards ``text`` names."""
    urls = expand_shards(text)
    first = next(iter_raw_samples(urls), None)
    if first is None:
        raise CliError(f"{text!r} holds no samples to infer a schema from")
    return SchemaInfo(infer_schema(first[1]), text, inferred=True)


def resolve_schema(text: str) -> SchemaInfo:
    """The schema ``text`` names (see the module docstring for the forms)."""
    is_ref = text.startswith("atdata://") and "/schema/" in text
    if is_ref or (_SCHEMA_REF.match(text) and not os.path.exists(text)):
        from ..index.refs import parse_ref

        try:
            parse_ref(text, "schema")
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        with open_index() as index:
            record = index.get_schema(text)
            return SchemaInfo(
                record.schema, f"{record.name}@{record.version}", record.ref, record.cid
            )
    target = classify_target(text, bare_names=False)
    if target.kind == "index":
        with open_index() as index:
            entry = index.entry(target.ref)
            if entry.schema_ref is None:
                raise CliError(f"dataset {entry.ref} has no recorded schema")
            record = index.get_schema(entry.schema_ref)
            return SchemaInfo(
                record.schema, f"{record.name}@{record.version}", record.ref, record.cid
            )
    if target.kind == "atmosphere":
        raise CliError(f"{text!r}: schemas on the atmosphere are not supported by this command yet")
    return infer_from_shards(text)


# -- showing ------------------------------------------------------------------------------------
def describe_type(ftype: FieldType) -> str:
    """``array uint8 (32, 32, 3)`` for arrays (``?`` for any size), else as the schema says."""
    return ftype.describe(_describe_array)


def _describe_array(ftype: FieldType) -> str:
    import numpy as np

    dtype = np.dtype(ftype.dtype).name if ftype.dtype else "any dtype"
    if ftype.shape is None:
        shape = " (any shape)"
    else:
        dims = ", ".join("?" if d is None else str(d) for d in ftype.shape)
        shape = f" ({dims}{',' if len(ftype.shape) == 1 else ''})"
    return f"array {dtype}{shape}"


def schema_table(info: SchemaInfo) -> Table:
    """The fields of a schema as a rich table."""
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("field", style="cyan")
    table.add_column("type")
    if not info.inferred:
        table.add_column("required")
    members = any(f.members for f in info.schema.fields)
    if members:  # member layout: each field is read from the first of these tar members found
        table.add_column("members")
    for f in info.schema.fields:
        row = [f.name, describe_type(f.type)]
        if not info.inferred:
            row.append("yes" if f.required else "no (has a default)")
        if members:
            row.append(", ".join(f".{ext}" for ext in f.members or ()))
        table.add_row(*row)
    return table


@schema_app.command("show")
def show(
    schema: Annotated[
        str,
        typer.Argument(
            help="Schema ref (Name@1.0.0, atdata://...), @local/name or shards.", metavar="REF|PATH"
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Show a schema's fields with their types, dtypes and shapes."""
    info = resolve_schema(schema)
    if as_json:
        emit_json(info.to_dict())
        return
    console = out_console()
    if info.inferred:
        console.print(
            Text.assemble(("Schema ", "bold"), "inferred from the first sample of ", info.label),
            soft_wrap=True,
        )
    else:
        console.print(Text.assemble(("Schema ", "bold"), (info.label, "bold cyan")))
        console.print(Text(f"  ref  {info.ref}\n  cid  {info.cid}", style="dim"), soft_wrap=True)
        if info.schema.description:
            console.print(Text(f"  {info.schema.description.strip()}", style="italic"))
    console.print(schema_table(info))


@schema_app.command("stub")
def stub(
    schema: Annotated[
        str,
        typer.Argument(
            help="Schema ref (Name@1.0.0, atdata://...), @local/name or shards.", metavar="REF|PATH"
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Write the module here instead of to stdout."),
    ] = None,
) -> None:
    """Write a typed Python module (a @packable class with dtypes and shapes) for a schema.

    The module is generated from the schema's validated fields as plain text for you to review
    and commit; atdata never imports or runs it.
    """
    from ..stubgen import schema_stub

    info = resolve_schema(schema)
    text = schema_stub(info.schema, ref=info.ref)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise CliError(f"cannot write {output!r}: {exc}") from exc
    typer.echo(f"wrote {output} ({info.label})", err=True)


# -- comparing ----------------------------------------------------------------------------------
Status = Literal["same", "changed", "added", "removed", "moved"]


@dataclass(frozen=True)
class FieldDiff:
    name: str
    status: Status
    a: str | None
    b: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "a": self.a, "b": self.b}


def _strict_key(f: Field) -> Any:
    return (_type_key(f.type), f.required)


def _type_key(t: FieldType) -> Any:
    return (
        t.kind,
        t.optional,
        t.dtype,
        t.shape,
        _type_key(t.item) if t.item else None,
        tuple((f.name, _strict_key(f)) for f in t.schema.fields) if t.schema else None,
    )


def _loose_match(a: FieldType, b: FieldType) -> bool:
    if "any" in (a.kind, b.kind):
        return True
    if {a.kind, b.kind} <= {"dict", "sample"} or {a.kind, b.kind} <= {"image", "bytes"}:
        return True
    if a.kind != b.kind:
        return False
    if a.kind == "array":
        if a.dtype and b.dtype and a.dtype != b.dtype:
            return False
        if a.shape is None or b.shape is None:
            return True
        return len(a.shape) == len(b.shape) and all(
            x is None or y is None or x == y for x, y in zip(a.shape, b.shape, strict=True)
        )
    if a.kind == "list" and a.item and b.item:
        return _loose_match(a.item, b.item)
    return True


def _describe_field(f: Field, with_required: bool) -> str:
    text = describe_type(f.type)
    if with_required and not f.required:
        text += " (optional)"
    return text


def diff_schemas(a: SchemaInfo, b: SchemaInfo) -> list[FieldDiff]:
    """Field-by-field differences of ``b`` against ``a``, in ``a``'s order then ``b``'s."""
    loose = a.inferred or b.inferred
    a_fields = {f.name: f for f in a.schema.fields}
    b_fields = {f.name: f for f in b.schema.fields}
    out: list[FieldDiff] = []
    for name, fa in a_fields.items():
        da = _describe_field(fa, not loose)
        fb = b_fields.get(name)
        if fb is None:
            out.append(FieldDiff(name, "removed", da, None))
            continue
        db = _describe_field(fb, not loose)
        same = _loose_match(fa.type, fb.type) if loose else _strict_key(fa) == _strict_key(fb)
        out.append(FieldDiff(name, "same" if same else "changed", da, db))
    out += [
        FieldDiff(name, "added", None, _describe_field(fb, not loose))
        for name, fb in b_fields.items()
        if name not in a_fields
    ]
    if not loose and all(d.status == "same" for d in out):
        a_order = [f.name for f in a.schema.fields]
        b_order = [f.name for f in b.schema.fields]
        if a_order != b_order:
            out = [
                FieldDiff(d.name, "moved", d.a, d.b)
                if a_order.index(d.name) != b_order.index(d.name)
                else d
                for d in out
            ]
    return out


def _change_kind(a: SchemaInfo, b: SchemaInfo, diffs: list[FieldDiff]) -> str:
    if all(d.status == "same" for d in diffs):
        return "none"
    if a.inferred or b.inferred:
        return "different"
    from ..index.schemas import classify_change

    return classify_change(a.schema, b.schema)


_MARKS: dict[Status, tuple[str, str]] = {
    "same": (" ", ""),
    "changed": ("~", "yellow"),
    "added": ("+", "green"),
    "removed": ("-", "red"),
    "moved": ("↕", "yellow"),
}


def _side_label(info: SchemaInfo) -> str:
    if info.inferred:
        return f"{info.label} (inferred from the first sample)"
    return f"{info.label} ({info.ref})"


@schema_app.command("diff")
def diff(
    a: Annotated[
        str, typer.Argument(help="The first schema: ref, @local/name or shards.", metavar="A")
    ],
    b: Annotated[
        str, typer.Argument(help="The second schema: ref, @local/name or shards.", metavar="B")
    ],
    as_json: JsonOption = False,
) -> None:
    """Compare two schemas field by field; exit 0 when the same, 1 when different."""
    left, right = resolve_schema(a), resolve_schema(b)
    diffs = diff_schemas(left, right)
    change = _change_kind(left, right, diffs)
    same = change == "none"
    if as_json:
        emit_json(
            {
                "same": same,
                "change": change,
                "a": left.to_dict(),
                "b": right.to_dict(),
                "fields": [d.to_dict() for d in diffs],
            }
        )
    else:
        console = out_console()
        console.print(Text(f"--- {_side_label(left)}", style="red"), soft_wrap=True)
        console.print(Text(f"+++ {_side_label(right)}", style="green"), soft_wrap=True)
        width = max((len(d.name) for d in diffs), default=0)
        for d in diffs:
            mark, style = _MARKS[d.status]
            if d.status in ("changed",):
                body = f"{d.a}  ->  {d.b}"
            elif d.status == "moved":
                body = f"{d.a}  (position changed)"
            else:
                body = d.a if d.a is not None else (d.b or "")
            console.print(Text(f"{mark} {d.name:<{width}}  {body}", style=style), soft_wrap=True)
        if same:
            console.print(Text("same fields", style="bold green"))
        else:
            counts = [
                f"{n} {status}"
                for status in ("changed", "added", "removed", "moved")
                if (n := sum(1 for d in diffs if d.status == status))
            ]
            kind = f" (a {change} change)" if change != "different" else ""
            console.print(Text(f"different: {', '.join(counts)}{kind}", style="bold yellow"))
    if not same:
        raise typer.Exit(1)


@schema_app.command("ls")
def list_schemas(as_json: JsonOption = False) -> None:
    """List the schemas stored in the index, every version."""
    with open_index() as index:
        records = index.list_schemas()
    if as_json:
        emit_json(
            [
                {
                    "name": r.name,
                    "version": r.version,
                    "ref": r.ref,
                    "cid": r.cid,
                    "created_at": r.created_at,
                    "fields": len(r.schema.fields),
                }
                for r in records
            ]
        )
        return
    console = out_console()
    if not records:
        console.print("no schemas in the index yet")
        return
    table = Table(header_style="bold", box=None, pad_edge=False)
    table.add_column("schema", overflow="fold")
    table.add_column("version", no_wrap=True)
    table.add_column("fields", justify="right", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("ref", overflow="fold")
    for r in records:
        table.add_row(
            r.name, r.version, str(len(r.schema.fields)), r.created_at[:16].replace("T", " "), r.ref
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(schema_app)
