"""Running one measurement: a driver in a fresh child process, its peak RSS from ``wait4``.

Each measurement is its own process so that peak RSS (``ru_maxrss`` of that child alone, read
with ``os.wait4``) and time to first batch are not polluted by earlier work. Page-cache state is
set by the caller: :func:`drop_cache` evicts our own shard files (cold), :func:`warm_cache` reads
them once (warm).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Runner:
    """Which interpreter runs which driver module."""

    name: str
    python: str
    module: str


def run_driver(
    runner: Runner, spec: dict[str, Any], log: Path, timeout: float | None = None
) -> dict[str, Any]:
    """Run one driver with ``spec``; returns its JSON result plus ``rss_mib`` and ``wall_s``."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = Path(tmp.name)
    spec = dict(spec, out=str(out))
    cmd = [runner.python, "-m", runner.module, json.dumps(spec)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="0")
    try:
        with open(log, "ab") as logf:
            logf.write(f"\n$ {runner.name} {spec['op']} {spec['scenario']}\n".encode())
            logf.flush()
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL
            )
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(
                f"{runner.name} {spec['op']} {spec['scenario']} failed (exit {proc.returncode}):\n{tail}"
            )
        result: dict[str, Any] = json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)
    result["rss_mib"] = usage.ru_maxrss / 1024  # KiB on Linux
    result["child_cpu"] = usage.ru_utime + usage.ru_stime
    return result


# --------------------------------------------------------------------------- page cache
def drop_cache(files: list[str]) -> bool:
    """Evict ``files`` from the page cache (flushing them first); False where unsupported."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def warm_cache(files: list[str]) -> None:
    buf = bytearray(8 << 20)
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def cached_fraction(files: list[str]) -> float | None:
    """Fraction of the files' pages resident in the page cache (via util-linux ``fincore``)."""
    try:
        out = subprocess.run(
            ["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES,SIZE", *files],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    res = size = 0
    for line in out.splitlines():
        r, s = line.split()
        res, size = res + int(r), size + int(s)
    return res / size if size else None


# --------------------------------------------------------------------------- statistics
@dataclass
class Series:
    """Repetitions of one measurement, summarised by their median."""

    runs: list[dict[str, Any]] = field(default_factory=list)

    def median(self, key: str) -> float | None:
        vals = [r[key] for r in self.runs if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    def spread(self, key: str) -> tuple[float, float] | None:
        vals = [r[key] for r in self.runs if r.get(key) is not None]
        return (min(vals), max(vals)) if vals else None

    def summary(self) -> dict[str, Any]:
        seconds = self.median("seconds")
        first = self.runs[0] if self.runs else {}
        items = first.get("ids", {}).get("count", first.get("items"))
        out: dict[str, Any] = {
            "reps": len(self.runs),
            "seconds": seconds,
            "seconds_min_max": self.spread("seconds"),
            "seconds_all": [r["seconds"] for r in self.runs],
            "samples": items,
            "bytes": first.get("bytes"),
            "ttfb": self.median("ttfb"),
            "cpu": self.median("cpu"),
            "rss_mib": max((r["rss_mib"] for r in self.runs), default=None),
            "import_s": self.median("import_s"),
            "gen_s": self.median("gen_s"),
            "ids": [r["ids"] for r in self.runs if "ids" in r],
        }
        if seconds:
            out["samples_per_s"] = items / seconds if items else None
            out["mb_per_s"] = first["bytes"] / seconds / 1e6 if first.get("bytes") else None
            out["cpu_us_per_sample"] = (
                out["cpu"] / items * 1e6 if items and out["cpu"] is not None else None
            )
        return out


def python_here() -> str:
    return sys.executable
