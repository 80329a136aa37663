"""What every driver shares: the spec it is given, the timed pass, and the result it writes.

A driver is run as ``python -m benchmarks.drivers.NAME '<spec json>'``; the spec names the
scenario, the operation and where the shards are, and ``out``, the file the JSON result goes to.
Timings cover only the measured work (imports and data generation are reported separately).
"""

import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..scenarios import SCENARIOS, Scenario, ids_digest

Handler = Callable[[Scenario, dict[str, Any]], dict[str, Any]]


def shard_files(spec: dict[str, Any]) -> list[str]:
    return [str(Path(spec["dir"]) / (spec["pattern"] % i)) for i in range(spec["shards"])]


def brace_url(spec: dict[str, Any]) -> str:
    """``dir/data-{000000..000099}.tar`` for a ``data-%06d.tar`` pattern (one file: no braces)."""
    k = spec["shards"]
    if k == 1:
        return shard_files(spec)[0]
    prefix, suffix = spec["pattern"].split("%06d")
    return str(Path(spec["dir"]) / f"{prefix}{{{0:06d}..{k - 1:06d}}}{suffix}")


def first_element_id(value: Any) -> int:
    """The id carried by a field: an int, or the first element of an array (decoded or compact bytes)."""
    if isinstance(value, int):
        return value
    if isinstance(value, np.ndarray):
        return int(value.flat[0])
    buf = memoryview(value)
    dlen = buf[0]
    dtype = np.dtype(bytes(buf[1 : 1 + dlen]).decode())
    hlen = 2 + dlen + 8 * buf[1 + dlen]
    return int(np.frombuffer(buf, dtype=dtype, count=1, offset=hlen)[0])


def batch_ids(column: Any) -> np.ndarray:
    """Ids of one batch from its id column: a list/array of ints, or stacked arrays."""
    arr = np.asarray(column)
    if arr.ndim == 1:
        return arr.astype(np.int64, copy=False)
    return arr.reshape(len(arr), -1)[:, 0].astype(np.int64)


def timed_pass(
    make_iter: Callable[[], Iterable[Any]], ids_of: Callable[[Any], Any], batched: bool
) -> dict[str, Any]:
    """Run one full pass; returns seconds, time to first item, CPU seconds and the id digest."""
    clock, cpu = time.perf_counter, time.process_time
    collected: list[Any] = []
    first = None
    items = 0
    t0, c0 = clock(), cpu()
    for item in make_iter():
        if first is None:
            first = clock() - t0
        collected.append(ids_of(item))
        items += 1
    seconds, cpu_s = clock() - t0, cpu() - c0
    ids = (
        np.concatenate(collected)
        if batched and collected
        else np.asarray(collected, dtype=np.int64)
    )
    return {"seconds": seconds, "ttfb": first, "cpu": cpu_s, "items": items, "ids": ids_digest(ids)}


def shards_bytes(files: Iterable[str]) -> int:
    return sum(Path(f).stat().st_size for f in files)


def main(handlers: dict[str, Handler], import_s: float) -> None:
    spec = json.loads(sys.argv[1])
    sc = SCENARIOS[spec["scenario"]]
    op = spec["op"]
    if op not in handlers:
        raise SystemExit(f"this driver has no op {op!r} (has {sorted(handlers)})")
    result = handlers[op](sc, spec)
    result["import_s"] = import_s
    Path(spec["out"]).write_text(json.dumps(result))
