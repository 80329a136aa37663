"""What the B7 (torch) drivers share: peak memory of the whole process tree, sampled.

``wait4`` gives the peak RSS of the driver process alone; with DataLoader workers the loader's
memory is spread over several processes, so a sampler thread also records the peak of the sum of
PSS (proportional set size: shared pages divided among the processes sharing them, so the sum
does not count the page cache or torch's libraries once per worker) over the driver and all its
descendants, ten times a second.
"""

import os
import threading
import time
from pathlib import Path
from typing import Any


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            out.extend(int(c) for c in text.split())
    except OSError:
        pass
    return out


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pss_kib(root: int) -> int:
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _pss_kib(pid)
        stack.extend(_children(pid))
    return total


class TreeMemory:
    """Peak PSS of this process and its descendants while the ``with`` block runs."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, tree_pss_kib(me))
            self._stop.wait(self.interval)

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, tree_pss_kib(os.getpid()))

    def result(self) -> dict[str, Any]:
        return {"tree_pss_mib": self.peak_kib / 1024}


def median_ms(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[len(ordered) // 2] * 1e3


def clock() -> float:
    return time.perf_counter()
