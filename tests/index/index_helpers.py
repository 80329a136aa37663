"""Helpers shared by the index tests (a uniquely named module, so child processes find it)."""

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from index_types import Point

from atdata.errors import IndexUnavailableError
from atdata.index import Index, Provider
from atdata.stores import LocalDiskStore


def open_index(opener: Callable[[], Provider], data: Path) -> Index:
    """An Index on a fresh provider connection (for child processes)."""
    return Index(opener(), LocalDiskStore(data))


def make_samples(n: int, *, start: int = 0, sample_type: Any = None) -> list[Any]:
    """``n`` small samples of the tests' ``Point`` type (or another packable type)."""
    cls = sample_type or Point
    return [cls(x=start + i, name=f"p{start + i}") for i in range(n)]


def check_writer_waits_for_the_lock(holder: Provider, waiter: Provider) -> None:
    """``waiter`` (timeout about 0.3s) waits for the lock ``holder`` holds, then gives up with a
    clear error, while its reads go on; once the lock is free its writes go through. Closes both.
    """
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.transaction() as tx:
            tx.put("head", "x", {"by": "holder"})
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert inside.wait(10)
        started = time.monotonic()
        with pytest.raises(IndexUnavailableError, match="locked by another writer"):
            with waiter.transaction() as tx:
                tx.put("head", "x", {"by": "waiter"})
        # it waited out its timeout first (a lower bound: a loaded machine only adds to it)
        assert time.monotonic() - started >= 0.25
        assert waiter.get("head", "x") is None  # reads never wait for the lock
    finally:
        release.set()
        thread.join()
    assert waiter.get("head", "x") == {"by": "holder"}
    with waiter.transaction() as tx:  # the waiter's connection was returned clean
        tx.put("head", "x", {"by": "waiter"})
    assert holder.get("head", "x") == {"by": "waiter"}
    holder.close()
    waiter.close()
