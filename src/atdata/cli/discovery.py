"""``atdata indexer`` (run a discovery indexer) and ``atdata search`` (query one)."""

import signal
import sys
import threading
from typing import Annotated, Any

import typer

from ._shared import JsonOption, emit_json, out_console

__all__ = ["indexer_command", "register", "search_command"]

_INDEXER_ENV = "ATDATA_INDEXER_URL"  # atdata.discovery.INDEXER_URL_ENV (not imported: --help)


def indexer_command(
    follow: Annotated[
        list[str],
        typer.Option("--follow", help="A PDS or relay to follow (http(s) URL); repeatable."),
    ],
    plc: Annotated[
        list[str],
        typer.Option(
            "--plc",
            help="A PLC directory to read DID documents (signing keys) from; repeatable.",
        ),
    ],
    db: Annotated[
        str,
        typer.Option("--db", help="Index database: sqlite:///path or postgresql://..."),
    ] = "sqlite:///atdata-index.sqlite",
    listen: Annotated[
        str, typer.Option("--listen", help="host:port to serve XRPC queries on (loopback).")
    ] = "127.0.0.1:2584",
    *,
    from_now: Annotated[
        bool,
        typer.Option(
            "--from-now",
            help="A host with no stored cursor is followed from its live head, not replayed "
            "from the start of its stream (use with a relay). A stored cursor always wins: a "
            "restart resumes after the last event applied. Repositories that commit later are "
            "read whole; quiet ones stay unindexed unless named with --backfill.",
        ),
    ] = False,
    backfill: Annotated[
        list[str] | None,
        typer.Option(
            "--backfill",
            help="A DID whose whole repository is read in at start (from the first --follow "
            "host, else its own PDS); repeatable.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Follow PDS event streams and serve dataset search over XRPC (until interrupted).

    With no stored cursor, a host is replayed from the start of its stream (cursor 0), or
    followed from its live head with --from-now; after that the stored cursor decides.
    """
    from ..discovery.service import Indexer

    for did in backfill or ():
        if not did.startswith("did:"):
            raise typer.BadParameter(f"{did!r:.100} is not a DID", param_hint="--backfill")
    indexer = Indexer(
        hosts=follow,
        db=db,
        plc_urls=plc,
        listen=listen,
        from_now=from_now,
        backfill=list(backfill or ()),
    )
    url = indexer.start()
    print(f"indexer listening on {url}", flush=True)
    done = threading.Event()

    def stop(*_: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    done.wait()
    indexer.stop()


def search_command(
    text: Annotated[str | None, typer.Argument(help="Words of the name or description.")] = None,
    *,
    schema: Annotated[
        str | None, typer.Option("--schema", help="Schema at:// URI, CID or name.")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")] = None,
    license: Annotated[str | None, typer.Option("--license", help="License.")] = None,
    repo: Annotated[str | None, typer.Option("--repo", help="Publisher DID.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Results per page (1-100).")] = 25,
    indexer: Annotated[
        str | None,
        typer.Option("--indexer", envvar=_INDEXER_ENV, help="Indexer URL.", show_default=False),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Search an indexer for datasets; each result's URI loads with ``atdata.load_dataset``."""
    from ..discovery import DiscoveryClient

    page = DiscoveryClient(indexer).search_datasets(
        text, tags=tag or (), schema=schema, license=license, repo=repo, limit=limit
    )
    if as_json:
        emit_json({"results": [dict(r.record) for r in page], "cursor": page.cursor})
        return
    console = out_console()
    for r in page:
        console.print(f"{r.uri}  {r.name}  {r.description or ''}", markup=False, highlight=False)
    if not page:
        print("no datasets found", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.command("indexer", short_help="Run a discovery indexer following PDSes.")(indexer_command)
    app.command("search", short_help="Search an indexer for datasets.")(search_command)
