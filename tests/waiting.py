"""Waiting for work another thread or process finishes on its own time (a writer's background
shard commits, say): poll a condition until it holds, failing the test with a message if it never
does."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import IO


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Return once ``condition()`` is true; raise ``AssertionError`` naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.01)


def first_line(stream: IO[str], timeout: float) -> str:
    """The first line a child process prints on ``stream`` (its readiness line), or "" when it
    prints none within ``timeout`` seconds or closes the stream first."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""
