"""Helpers shared by the index tests (a uniquely named module, so child processes find it)."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from index_types import Point

from atdata.index import Index, Provider
from atdata.stores import LocalDiskStore


def open_index(opener: Callable[[], Provider], data: Path) -> Index:
    """An Index on a fresh provider connection (for child processes)."""
    return Index(opener(), LocalDiskStore(data))


def make_samples(n: int, *, start: int = 0, sample_type: Any = None) -> list[Any]:
    """``n`` small samples of the tests' ``Point`` type (or another packable type)."""
    cls = sample_type or Point
    return [cls(x=start + i, name=f"p{start + i}") for i in range(n)]
