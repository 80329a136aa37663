"""Running the discovery indexer as a real subprocess (``atdata indexer``) for the tests."""

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def indexer_process(hosts: list[str], plcs: list[str], db: str) -> Iterator[tuple[Any, str]]:
    """``atdata indexer`` following ``hosts``, on port 0; (process, its base URL)."""
    argv = [sys.executable, "-m", "atdata.cli", "indexer", "--db", db, "--listen", "127.0.0.1:0"]
    for host in hosts:
        argv += ["--follow", host]
    for plc in plcs:
        argv += ["--plc", plc]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    stdout = proc.stdout
    assert stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        try:
            line = lines.get(timeout=60)
        except queue.Empty:
            line = ""
        if not line.startswith("indexer listening on "):
            proc.kill()
            raise RuntimeError(f"indexer did not start: {line!r} {proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]
        yield proc, line.split()[-1]
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
