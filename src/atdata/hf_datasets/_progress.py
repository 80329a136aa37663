"""A progress bar over a stream of samples, drawn on stderr only when it is a terminal."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["counted"]

T = TypeVar("T")


@contextmanager
def counted(items: Iterable[T], total: int | None, *, enabled: bool) -> Iterator[Iterator[T]]:
    """``items`` passed through, advancing a transient bar of ``total`` (None: unknown)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    console = Console(stderr=True)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("converting"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=not (enabled and console.is_terminal),
    )
    task = progress.add_task("converting", total=total)

    def advancing() -> Iterator[T]:
        for item in items:
            yield item
            progress.advance(task)

    with progress:
        yield advancing()
