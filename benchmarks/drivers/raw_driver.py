"""The physical limit: read every shard's bytes into one reusable buffer (no parsing)."""

import time
from typing import Any

from ..scenarios import Scenario
from .common import main, shard_files

_BUFFER = 8 << 20


def read_bytes(sc: Scenario, spec: dict[str, Any]) -> dict[str, Any]:
    files = shard_files(spec)
    buf = bytearray(_BUFFER)
    view = memoryview(buf)
    total = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(view):
                total += n
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": seconds, "cpu": cpu, "bytes": total, "items": spec["n"], "ttfb": None}


main({"read": read_bytes}, 0.0)
