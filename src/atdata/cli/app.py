"""The ``atdata`` command line: the typer app, its error handling and :func:`main`.

Each command group is a small module of this package with a ``register(app)`` function:

=================  ===================================================================
``inspection``     ``inspect``, ``preview``
``schemas``        ``schema show``, ``schema diff``, ``schema ls``
``verify``         ``verify``
``datasets``       ``ls``, ``rm``
``derive``         ``derive``, ``lineage``, ``derive-errors``
``system``         ``version``, ``diagnose``
``demo``           ``demo`` (logic in :mod:`atdata.demo`)
``account``        ``login``, ``logout``, ``whoami`` (the stored ATProto session)
``publishing``     ``publish``; ``ls @handle`` is listed by ``publishing.ls_remote``
=================  ===================================================================

Every command is registered, whatever extras are installed: a command imports what it needs
(the atmosphere package, redis, ...) when it runs, and a missing extra is an ImportError naming
the ``pip install 'atdata[...]'`` command (exit 1). ``inspect``, ``preview`` and ``verify``
take local paths, index names and atmosphere references alike: :mod:`atdata.cli.targets`
resolves the argument once.

``-v``/``--verbose`` (repeatable) and ``-q``/``--quiet`` set what the library's log records
(the ``atdata`` logger) show on stderr, for this command only: see :mod:`atdata.cli.logs`.

Exit codes: 0 success; 1 an atdata error (one red line on stderr; ``--debug`` shows the
traceback), a checksum mismatch (``verify``), different schemas (``schema diff``), a failed check
(``diagnose``) or a declined confirmation; 2 a usage error; 130 interrupted.
"""

import os
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.text import Text
from typer.core import TyperGroup

from .._redact import redact
from ..errors import AtdataError
from . import (
    account,
    datasets,
    demo,
    derive,
    discovery,
    inspection,
    local,
    logs,
    publishing,
    query,
    schemas,
    system,
    verify,
)
from ._shared import CliError, err_console

__all__ = ["app", "build_app", "main"]

#: The command modules, in the order their commands are listed.
COMMAND_MODULES: tuple[ModuleType, ...] = (
    inspection,
    query,
    schemas,
    verify,
    datasets,
    derive,
    system,
    demo,
    account,
    publishing,
    local,
    discovery,
)

_DEBUG_ENV = "ATDATA_DEBUG"
# click's UsageError, as the click that typer uses spells it (typer may vendor its own copy)
_USAGE_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)


class AtdataGroup(TyperGroup):
    """The root group: turns atdata errors into one red line and exit status 1."""

    def invoke(self, ctx: Any) -> Any:  # ctx: typer's click Context
        try:
            return super().invoke(ctx)
        except _USAGE_ERROR as exc:
            # click prints the message; it may quote an argument that holds a password
            exc.message = redact(str(getattr(exc, "message", "")))  # type: ignore[attr-defined]
            raise
        except (AtdataError, ImportError) as exc:
            if _debug(ctx):
                raise
            code = exc.exit_code if isinstance(exc, CliError) else 1
            _error(str(exc) or type(exc).__name__)
            raise typer.Exit(code) from None
        except KeyboardInterrupt:
            if _debug(ctx):
                raise
            _error("interrupted")
            raise typer.Exit(130) from None


def _debug(ctx: Any) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get(_DEBUG_ENV, "") not in ("", "0")


def _error(message: str) -> None:
    # a message may quote an index URL or DSN: never print a password or token
    err_console().print(Text(f"error: {redact(message)}", style="bold red"), soft_wrap=True)


def _root(
    ctx: typer.Context,
    debug: Annotated[
        bool,
        typer.Option("--debug", help=f"Show full tracebacks (or set {_DEBUG_ENV}=1)."),
    ] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            show_default=False,
            help="Show the library's log records on stderr: -v info (retries, fallbacks, "
            "failed checks), -vv debug (cache hits and misses, passed checks).",
        ),
    ] = 0,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Errors only: no notes, warnings or log records."),
    ] = False,
) -> None:
    """atdata: typed ML datasets in WebDataset shards, with an index, lenses and checksums.

    Name shards by a path, directory, glob, brace pattern or URL, and datasets in the local
    index by @local/name[@version] ($ATDATA_HOME, default ~/.atdata). Start with: atdata demo
    """
    logs.configure(ctx, verbose, quiet)


def build_app() -> typer.Typer:
    """A fresh app with every command module registered."""
    app = typer.Typer(
        cls=AtdataGroup,
        name="atdata",
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,  # help text is literal: "name[@version]" stays as written
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    for module in COMMAND_MODULES:
        module.register(app)
    return app


app = build_app()


def main() -> None:
    """The ``atdata`` script (``[project.scripts]``)."""
    app(prog_name="atdata")
