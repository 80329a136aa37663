"""``atdata ls`` (datasets and their versions in the index) and ``atdata rm NAME[@version]``.

``ls @handle`` lists a handle's datasets on the atmosphere (:func:`atdata.cli.publishing.ls_remote`).
"""

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ..dataset_refs import is_atmosphere_reference
from ..errors import ConflictError
from ._shared import (
    CliError,
    JsonOption,
    dataset_ref,
    emit_json,
    human_size,
    open_index,
    out_console,
)

if TYPE_CHECKING:
    from ..index import DatasetEntry

__all__ = ["ls_command", "register", "rm_command"]


def _version_dict(e: "DatasetEntry") -> dict[str, Any]:
    return {
        "version": e.version,
        "ref": e.ref,
        "uri": e.uri,
        "cid": e.cid,
        "count": e.count,
        "shards": len(e.shards),
        "size": e.size,
        "schema_ref": e.schema_ref,
        "created_at": e.created_at,
        "description": e.description,
        "stored": e.stored,
    }


def ls_command(
    where: Annotated[
        str | None,
        typer.Argument(
            help="Nothing (or @local) for the local index; @handle for a handle's datasets on "
            "the atmosphere.",
            metavar="[@local|@handle]",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the datasets in the index with their versions."""
    if where is not None and is_atmosphere_reference(where):
        from .publishing import ls_remote

        ls_remote(where, as_json=as_json)
        return
    if where not in (None, "@local"):
        raise typer.BadParameter(
            f"{where!r}: give nothing or @local for the local index, or @handle for the atmosphere"
        )
    with open_index() as index:
        datasets = [(latest, index.history(latest.name)) for latest in index.datasets]
        labels: dict[str, list[str]] = {}
        for label in index.labels:
            labels.setdefault(label.target, []).append(label.name)
    if as_json:
        emit_json(
            [
                {
                    "name": latest.name,
                    "latest": latest.version,
                    "versions": [
                        {**_version_dict(e), "labels": labels.get(e.ref, [])} for e in history
                    ],
                }
                for latest, history in datasets
            ]
        )
        return
    console = out_console()
    if not datasets:
        console.print("no datasets in the index yet; try: atdata demo")
        return
    table = Table(header_style="bold", box=None, pad_edge=False)
    table.add_column("dataset", overflow="fold")
    table.add_column("versions", overflow="fold")
    table.add_column("samples", justify="right", no_wrap=True)
    table.add_column("shards", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("schema", overflow="fold")
    table.add_column("created", no_wrap=True)
    for latest, history in datasets:
        versions = ", ".join(
            str(e.version) + (f" ({', '.join(labels[e.ref])})" if e.ref in labels else "")
            for e in history
        )
        schema = latest.schema_ref.rsplit("/", 1)[-1] if latest.schema_ref else "-"
        table.add_row(
            Text(latest.name, style="cyan"),
            versions,
            f"{latest.count:,}",
            str(len(latest.shards)),
            human_size(latest.size),
            schema,
            latest.created_at[:16].replace("T", " "),
        )
    console.print(table)
    console.print(Text("samples, shards, size, schema: the latest version", style="dim"))


def rm_command(
    ref: Annotated[
        str,
        typer.Argument(
            help="name (the latest version), name@version, or @local/name[@version].",
            metavar="NAME[@VERSION]",
            show_default=False,
        ),
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    all_versions: Annotated[
        bool, typer.Option("--all", help="Remove every version of the dataset.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Also remove labels that name the version(s).")
    ] = False,
) -> None:
    """Remove a dataset version from the index (and its stored shards).

    Asks first unless --yes. Shards registered where they lay (insert with copy=False) are
    never deleted; a labelled version needs --force, which removes its labels too.
    """
    text = ref[len("@local/") :] if ref.startswith("@local/") else ref
    dataset_ref(text)
    with open_index() as index:
        if all_versions:
            if "@" in text.removeprefix("atdata://"):
                raise typer.BadParameter("--all takes a name without a version")
            targets = index.history(text)
        else:
            targets = [index.entry(text)]
        console = out_console()
        for e in targets:
            shards = (
                "its stored shards will be deleted"
                if e.stored
                else "its shards stay where they are (not managed by the index)"
            )
            console.print(
                f"{e.ref}: {e.count:,} samples, {len(e.shards)} shard(s), "
                f"{human_size(e.size)}; {shards}",
                soft_wrap=True,
                markup=False,
            )
        if not yes:
            what = (
                f"{len(targets)} version(s) of {targets[0].name}"
                if all_versions
                else targets[0].ref
            )
            typer.confirm(f"Remove {what}?", abort=True)
        try:
            removed = index.remove(text, all_versions=all_versions, force=force)
        except ConflictError as exc:
            if force:
                raise
            raise CliError(f"{exc} (on the command line: --force)") from exc
    for e in removed:
        console.print(Text(f"removed {e.ref}", style="green"))


def register(app: typer.Typer) -> None:
    app.command("ls")(ls_command)
    app.command("rm")(rm_command)
