"""The ``atdata`` command line: the typer app, its error handling and :func:`main`.

Each command group is a small module of this package with a ``register(app)`` function:

=================  ===================================================================
``inspection``     ``inspect``, ``preview``
``schemas``        ``schema show``, ``schema diff``, ``schema ls``
``verify``         ``verify``
``datasets``       ``ls``, ``rm``
``system``         ``version``, ``diagnose``
``demo``           ``demo`` (logic in :mod:`atdata.demo`)
``atmosphere``     optional: registered when the module exists (see below)
=================  ===================================================================

The atmosphere commands live in ``atdata/cli/atmosphere.py``; when that module exists it is
registered like the others (``register(app)`` adds ``login``, ``publish``, ...), and the local
commands hand it the arguments that name the atmosphere (``at://...``, ``@handle``,
``@handle/name``) by calling, when defined::

    ls_remote(handle: str, *, as_json: bool) -> None                   # atdata ls @handle
    inspect_remote(ref: str, *, as_json: bool) -> None                 # atdata inspect at://...
    preview_remote(ref: str, *, limit: int, as_json: bool) -> None     # atdata preview at://...
    verify_remote(ref: str, *, as_json: bool) -> None                  # atdata verify at://...

Without the module (or the function) such an argument gets a one-line error.

Exit codes: 0 success; 1 an atdata error (one red line on stderr; ``--debug`` shows the
traceback), a checksum mismatch (``verify``), different schemas (``schema diff``), a failed check
(``diagnose``) or a declined confirmation; 2 a usage error; 130 interrupted.
"""

import importlib
import os
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.text import Text
from typer.core import TyperGroup

from .._redact import redact
from ..errors import AtdataError
from . import datasets, demo, inspection, query, schemas, system, verify
from ._shared import ATMOSPHERE_MODULE, CliError, err_console

__all__ = ["app", "build_app", "main"]

#: The command modules, in the order their commands are listed.
COMMAND_MODULES: tuple[ModuleType, ...] = (
    inspection,
    query,
    schemas,
    verify,
    datasets,
    system,
    demo,
)
#: Modules registered only when they exist.
OPTIONAL_MODULES: tuple[str, ...] = (ATMOSPHERE_MODULE,)

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
    debug: Annotated[
        bool,
        typer.Option("--debug", help=f"Show full tracebacks (or set {_DEBUG_ENV}=1)."),
    ] = False,
) -> None:
    """atdata: typed ML datasets in WebDataset shards, with an index, lenses and checksums.

    Name shards by a path, directory, glob, brace pattern or URL, and datasets in the local
    index by @local/name[@version] ($ATDATA_HOME, default ~/.atdata). Start with: atdata demo
    """


def build_app() -> typer.Typer:
    """A fresh app with every command module (and the optional ones present) registered."""
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
    for name in OPTIONAL_MODULES:
        optional = _import_optional(name)
        if optional is not None:
            optional.register(app)
    return app


def _import_optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


app = build_app()


def main() -> None:
    """The ``atdata`` script (``[project.scripts]``)."""
    app(prog_name="atdata")
