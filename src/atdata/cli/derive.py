"""``atdata derive``, ``atdata lineage`` and ``atdata derive-errors``: derived datasets.

``derive SOURCE TRANSFORM NAME`` runs ``Index.derive``; TRANSFORM is ``module:function`` (or a
lens) that the command imports, as ``python -m`` would (the current directory is searched
first): code you name on your own command line, never code read from an index or the network.
"""

import os
import sys
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.table import Table
from rich.text import Text

from ._shared import JsonOption, ProgressBar, dataset_ref, emit_json, open_index, out_console

if TYPE_CHECKING:
    from ..derive.executors import OnError
    from ..index import DatasetEntry, Index

__all__ = ["derive_command", "derive_errors_command", "lineage_command", "register"]

_RefArgument = Annotated[str, typer.Argument(help="NAME[@VERSION]", show_default=False)]


def derive_command(
    source: Annotated[str, typer.Argument(help="The source dataset: NAME[@VERSION].")],
    transform: Annotated[
        str, typer.Argument(help="module:function (or module:lens) to apply to each sample.")
    ],
    name: Annotated[str, typer.Argument(help="The dataset the output is a new version of.")],
    *,
    executor: Annotated[
        str, typer.Option(help="inprocess, process (a local pool) or ray.")
    ] = "inprocess",
    workers: Annotated[int | None, typer.Option(help="Workers for process/ray.")] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="The Ray cluster to join (host:port, auto, or ray://host:port) with "
            "--executor ray; default: $RAY_ADDRESS, else a local Ray of --workers CPUs.",
            show_default=False,
        ),
    ] = None,
    on_error: Annotated[
        str, typer.Option(help="raise: stop at the first failure; record: keep going.")
    ] = "raise",
    version: Annotated[str, typer.Option(help="Your version string for the transform.")] = "",
    batch_size: Annotated[
        int | None, typer.Option(help="Call the transform with lists of this many samples.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (what is new, reused...) only.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Derive a new version of NAME from SOURCE: lineage recorded, unchanged shards reused."""
    from ..derive.executors import executor_named
    from ..index.entries import resolve_code_ref

    dataset_ref(source)
    if on_error not in ("raise", "record"):
        raise typer.BadParameter("--on-error is 'raise' or 'record'")
    policy = cast("OnError", on_error)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    fn = resolve_code_ref(transform, allow_import=True)
    if ray_address is not None and executor != "ray":
        raise typer.BadParameter("--ray-address needs --executor ray", param_hint="--ray-address")
    run = executor_named(executor, workers, ray_address=ray_address)
    with open_index() as index:
        plan = index.derive(
            source,
            fn,
            name,
            version=version,
            batch_size=batch_size,
            dry_run=True,
            on_error=policy,
        )
        if dry_run:
            if as_json:
                emit_json(
                    {
                        "previous": plan.previous,
                        "transform_changed": plan.transform_changed,
                        **plan.summary(),
                    }
                )
            else:
                out_console().print(plan.describe(), markup=False, soft_wrap=True)
            return
        if not as_json:
            out_console().print(plan.describe(), markup=False, soft_wrap=True)
        total = sum(p.shard.count for p in plan.inputs)
        with ProgressBar(f"deriving {name}", total, unit="items", enabled=not as_json) as bar:
            entry = index.derive(
                source,
                fn,
                name,
                executor=run,
                version=version,
                batch_size=batch_size,
                on_error=policy,
                on_task=lambda r: bar.advance(r.samples_in),
            )
    failures = len((entry.lineage or {}).get("failures") or ())
    if as_json:
        emit_json(
            {
                "ref": entry.ref,
                "cid": entry.cid,
                "count": entry.count,
                "shards": len(entry.shards),
                "failures": failures,
            }
        )
        return
    line = f"{entry.ref}: {entry.count:,} samples in {len(entry.shards)} shard(s)"
    if failures:
        line += f"; {failures} failure(s) recorded (atdata derive-errors {entry.ref})"
    out_console().print(Text(line, style="green"))


def lineage_command(
    ref: _RefArgument,
    as_json: JsonOption = False,
) -> None:
    """Show where a dataset version came from (ancestors) and what was derived from it."""
    dataset_ref(ref)
    with open_index() as index:
        entry = index.entry(ref)
        ancestors = _ancestors(index, entry)
        descendants = [e.ref for e in index.derived_from(entry.name)]
    if as_json:
        emit_json(
            {"ref": entry.ref, "cid": entry.cid, "ancestors": ancestors, "descendants": descendants}
        )
        return
    console = out_console()
    console.print(Text(f"{entry.ref}  {entry.cid}", style="cyan"))
    if not ancestors:
        console.print("  not derived (no lineage recorded)")
    for a in ancestors:
        pad = "  " * a["depth"]
        console.print(f"{pad}<- {a['ref']} by {a['transform']}", markup=False, soft_wrap=True)
    for d in descendants:
        console.print(f"  -> {d}", markup=False)


def derive_errors_command(
    ref: _RefArgument,
    as_json: JsonOption = False,
) -> None:
    """List the samples the transform failed on (derives run with --on-error record)."""
    dataset_ref(ref)
    with open_index() as index:
        lineage = index.lineage(ref)
    if lineage is None:
        raise typer.BadParameter(f"{ref} was not derived: it has no lineage")
    if as_json:
        emit_json([f.to_dict() for f in lineage.failures])
        return
    console = out_console()
    if not lineage.failures:
        console.print(f"{ref}: no failures recorded")
        return
    table = Table(header_style="bold", box=None, pad_edge=False)
    for col in ("key", "input shard", "error", "message"):
        table.add_column(col, overflow="fold")
    for f in lineage.failures:
        table.add_row(f.key, os.path.basename(f.shard), f.error_type, Text(f.message))
    console.print(table)


def _ancestors(index: "Index", entry: "DatasetEntry", depth: int = 1) -> list[dict[str, Any]]:
    """The chain of parents of ``entry`` (each with the transform that made its child)."""
    from ..errors import AtdataError

    lineage = index.lineage(entry.ref)
    if lineage is None or depth > 32:
        return []
    out: list[dict[str, Any]] = []
    t = lineage.transform
    made_by = f"{t.name}" + (f" (version {t.version})" if t.version else "")
    for parent in lineage.parents:
        out.append({"ref": parent.ref, "cid": parent.cid, "transform": made_by, "depth": depth})
        try:
            above = index.entry(parent.ref)
        except AtdataError:
            continue  # a parent outside the index (a plain Dataset), or removed since
        out += _ancestors(index, above, depth + 1)
    return out


def register(app: typer.Typer) -> None:
    app.command("derive")(derive_command)
    app.command("lineage")(lineage_command)
    app.command("derive-errors")(derive_errors_command)
