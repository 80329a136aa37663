"""``atdata local up|down|status``: local Redis, PostgreSQL, S3 (and optionally a PDS) for the
non-embedded setups, bound to 127.0.0.1, data under ``$ATDATA_HOME/local`` (see
:mod:`atdata.localdev`)."""

from typing import Annotated

import typer
from rich.table import Table

from ._shared import CliError, JsonOption, emit_json, err_console, out_console

__all__ = ["down_command", "register", "status_command", "up_command"]

local_app = typer.Typer(
    name="local",
    help="Start, check and stop local services (Redis, PostgreSQL, S3, PDS) on 127.0.0.1.",
    no_args_is_help=True,
)


def up_command(
    with_pds: Annotated[
        bool, typer.Option("--with-pds", help="Also start the ATProto PDS test harness.")
    ] = False,
    with_indexer: Annotated[
        bool,
        typer.Option(
            "--with-indexer",
            help="Also start the discovery indexer, following the local PDS (implies --with-pds).",
        ),
    ] = False,
) -> None:
    """Start the services (those already running are kept) and print the variables to export:
    eval "$(atdata local up)"."""
    from ..localdev import exports, indexer_available, up

    if with_indexer and not indexer_available():
        raise CliError(
            "--with-indexer: the discovery indexer (atdata.discovery) is not installed in "
            "this atdata; start without --with-indexer"
        )
    services = up(with_pds=with_pds, with_indexer=with_indexer)
    for line in exports(services):
        typer.echo(line)
    err_console().print(
        f"{len(services)} services running on 127.0.0.1 ({', '.join(services)}); "
        "`atdata local status` checks them, `atdata local down` stops them"
    )


def status_command(as_json: JsonOption = False) -> None:
    """Show each recorded service, its URL (without credentials) and whether it answers."""
    from .._redact import redact
    from ..localdev import status

    rows = status()
    if as_json:
        emit_json(
            [
                {
                    "name": s.name,
                    "pid": s.pid,
                    "port": s.port,
                    "url": redact(s.url),
                    "ok": ok,
                    "state": word,
                }
                for s, ok, word in rows
            ]
        )
    elif not rows:
        out_console().print("no local services recorded (`atdata local up` starts them)")
    else:
        table = Table(header_style="bold", box=None, pad_edge=False)
        for col in ("service", "pid", "url", "health"):
            table.add_column(col, overflow="fold")
        for s, ok, word in rows:
            table.add_row(s.name, str(s.pid), redact(s.url), ("ok: " if ok else "DOWN: ") + word)
        out_console().print(table)
    if any(not ok for _, ok, _ in rows):
        raise typer.Exit(1)


def down_command() -> None:
    """Stop every service `atdata local up` started (their data stays)."""
    from ..localdev import down

    stopped = down()
    out_console().print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def register(app: typer.Typer) -> None:
    local_app.command("up")(up_command)
    local_app.command("status")(status_command)
    local_app.command("down")(down_command)
    app.add_typer(local_app)
