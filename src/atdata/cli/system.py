"""``atdata version`` and ``atdata diagnose`` (is the installation and its index set up safely?)."""

import importlib
import os
import platform
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ._shared import CliError, JsonOption, emit_json, out_console

__all__ = ["diagnose_command", "register", "version_command"]

_STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def _versions() -> dict[str, Any]:
    from importlib import metadata

    deps: dict[str, str | None] = {}
    for dist in ("atdata", "numpy", "msgpack", "typer", "rich"):
        try:
            deps[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            deps[dist] = None
    from ..index import atdata_home

    return {
        "atdata": deps.pop("atdata") or "unknown (not installed as a package)",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "dependencies": deps,
        "atdata_home": str(atdata_home()),
    }


def version_command(as_json: JsonOption = False) -> None:
    """Print the versions of atdata, Python and the core dependencies."""
    info = _versions()
    if as_json:
        emit_json(info)
        return
    console = out_console()
    console.print(Text(f"atdata {info['atdata']}", style="bold"))
    deps = ", ".join(f"{k} {v}" for k, v in info["dependencies"].items() if v)
    console.print(
        Text(f"Python {info['python']} on {info['platform']}\n{deps}", style="dim"), soft_wrap=True
    )


def diagnose_command(
    index_url: Annotated[
        str | None,
        typer.Option(
            "--index-url",
            help="The index to check (sqlite:///..., redis://..., postgresql://...); default "
            "$ATDATA_INDEX_URL, else the default SQLite index under $ATDATA_HOME.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check the installation and the index backend (exit 1 on failure)."""
    try:
        module = importlib.import_module("atdata.diagnose")
    except ModuleNotFoundError as exc:
        if exc.name != "atdata.diagnose":
            raise
        raise CliError("this version of atdata has no diagnostics (atdata.diagnose)") from None
    from ..index.providers.url import INDEX_URL_ENV

    url = index_url or os.environ.get(INDEX_URL_ENV)
    if url:
        report = module.diagnose(url)
    else:
        # nothing names an index: check the one the CLI and Index() use by default
        from ..index import default_repository

        repo = default_repository()
        try:
            report = module.diagnose(provider=repo.provider)
        finally:
            repo.close()
    if as_json:
        emit_json(report.to_dict())
    else:
        table = Table(header_style="bold", box=None, pad_edge=False)
        table.add_column("status", no_wrap=True)
        table.add_column("check", no_wrap=True)
        table.add_column("detail", overflow="fold")
        for check in report.checks:
            detail = Text(check.detail)
            if check.hint:
                detail.append(f"\n→ {check.hint}", style="dim")
            table.add_row(
                Text(check.status, style=_STYLES.get(check.status, "")), check.name, detail
            )
        console = out_console()
        console.print(table)
        verdict = {"ok": "all good", "skip": "all good", "warn": "works, with warnings"}
        console.print(
            Text(
                verdict.get(report.status, "problems found"),
                style=_STYLES.get(report.status, "bold red") if report.ok else "bold red",
            )
        )
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("version")(version_command)
    app.command("diagnose", short_help="Check the installation and the index.")(diagnose_command)
