"""What the command modules share: consoles, JSON output, progress bars, argument forms.

Human output goes to stdout through rich; errors, warnings and progress bars go to stderr, so
``--json`` output on stdout is plain JSON and nothing else. Consoles are made per call (cheap),
so they follow whatever ``sys.stdout``/``sys.stderr`` are at that moment (pytest, CliRunner).
"""

import json
import os
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from ..dataset_refs import is_atmosphere_reference
from ..errors import AtdataError
from .logs import is_quiet

if TYPE_CHECKING:
    from ..index import Index

__all__ = [
    "JsonOption",
    "PIPE_WIDTH",
    "CliError",
    "ProgressBar",
    "Target",
    "classify_target",
    "dataset_ref",
    "emit_json",
    "err_console",
    "human_size",
    "note",
    "open_index",
    "out_console",
    "print_facts",
]

#: The ``--json`` flag of commands that can print JSON for scripts.
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

_NAME_FORM = re.compile(r"^[a-z0-9][a-z0-9._/-]*(@([0-9]+|latest))?\Z")
_PATH_HINTS = re.compile(r"[*?\[{]|\.tar$|^[./~]")


class CliError(AtdataError):
    """A command cannot do what was asked (the message says why); exits with ``exit_code``."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- output -----------------------------------------------------------------------------------
#: The width of output that goes to a pipe or file (unless ``COLUMNS`` says otherwise): wide
#: enough that table rows stay on one line for ``grep``; tables still take only what they need.
PIPE_WIDTH = 160


def _console(stderr: bool) -> Console:
    # no markup, emoji codes or highlighting: data (paths, captions, "list[str]") prints as is
    console = Console(stderr=stderr, markup=False, emoji=False, highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = PIPE_WIDTH
    return console


def out_console() -> Console:
    """A console on the current stdout, for human-readable results."""
    return _console(stderr=False)


def err_console() -> Console:
    """A console on the current stderr, for errors, notes and progress bars."""
    return _console(stderr=True)


def emit_json(data: Any) -> None:
    """Write ``data`` to stdout as JSON (and nothing else)."""
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def note(message: str) -> None:
    """A dim note on stderr (never mixed into stdout); none with ``--quiet``."""
    if is_quiet():
        return
    err_console().print(Text(message, style="dim"), soft_wrap=True)


def print_facts(rows: list[tuple[str, str]]) -> None:
    """``key  value`` rows on stdout, the keys dim."""
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    out_console().print(table)


def human_size(n: int | None) -> str:
    """``1536`` -> ``1.5 KiB``."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class ProgressBar:
    """A rich progress bar on stderr, drawn only when stderr is a terminal (and ``enabled``, and
    not ``--quiet``), so logs, pipes and ``--json`` output stay clean. Use it as a context manager, or ``start()`` and
    ``stop()`` it yourself; ``advance(amount)`` moves it."""

    def __init__(
        self,
        description: str,
        total: float | None,
        *,
        unit: Literal["bytes", "items"],
        enabled: bool = True,
    ) -> None:
        console = err_console()
        columns: list[ProgressColumn] = [
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
        ]
        if unit == "bytes":
            columns += [DownloadColumn(binary_units=True), TransferSpeedColumn()]
        else:
            columns += [MofNCompleteColumn(), TaskProgressColumn()]
        columns.append(TimeRemainingColumn())
        self._progress = Progress(
            *columns,
            console=console,
            transient=True,
            disable=not (enabled and console.is_terminal) or is_quiet(),
        )
        self._task = self._progress.add_task(description, total=total)
        self._running = False

    def start(self) -> None:
        if not self._running:
            self._progress.start()
            self._running = True

    def stop(self) -> None:
        if self._running:
            self._progress.stop()
            self._running = False

    def advance(self, amount: float) -> None:
        self._progress.advance(self._task, amount)

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        """Set the total (once known) and the description shown."""
        self._progress.update(self._task, total=total, description=description)

    def __enter__(self) -> "ProgressBar":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the index ----------------------------------------------------------------------------------
def open_index() -> "Index":
    """The default index (``Index()``: SQLite + local disk under ``$ATDATA_HOME``)."""
    from ..index import Index

    return Index()


def dataset_ref(text: str) -> str:
    """``text`` if it is a valid dataset reference (``name``, ``name@3``, ``atdata://...``);
    a usage error (exit 2) saying what is wrong otherwise."""
    from ..index.refs import parse_ref

    try:
        parse_ref(text, "dataset")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return text


# -- what an argument names ---------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """What a ``PATH|NAME`` argument names: shards on disk or at a URL, an index dataset, or an
    atmosphere record. ``ref`` is the dataset reference for ``index`` targets."""

    kind: Literal["path", "index", "atmosphere"]
    text: str
    ref: str = ""


def classify_target(text: str, *, bare_names: bool = True) -> Target:
    """Decide what ``text`` names.

    ``@local/name[@v]`` and ``atdata://local/dataset/...`` are index datasets; ``at://`` and
    ``@handle`` are the atmosphere; URLs, existing paths, globs, brace patterns and ``*.tar`` are
    shards. With ``bare_names``, anything else of the form ``name[@v]`` is an index dataset.
    """
    if is_atmosphere_reference(text):
        return Target("atmosphere", text)
    if text.startswith("@local/"):
        return Target("index", text, dataset_ref(text[len("@local/") :]))
    if text.startswith("atdata://"):
        return Target("index", text, dataset_ref(text))
    from ..sources import scheme_of

    if scheme_of(text) != "file" or os.path.exists(text) or _PATH_HINTS.search(text):
        return Target("path", text)
    if bare_names and _NAME_FORM.match(text):
        return Target("index", text, dataset_ref(text))
    return Target("path", text)
