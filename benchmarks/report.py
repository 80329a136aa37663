"""Rendering results: one markdown table per scenario, plus the targets from BENCHMARKS.md.

``python -m benchmarks.report benchmarks/.data/results-*.json`` re-renders a saved run (the
output is meant to be pasted into benchmarks/RESULTS.md).
"""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

READERS = {
    "ours": "ours",
    "atdata07": "atdata 0.7.0b1",
    "wds": "webdataset raw",
    "raw": "page cache (bytes)",
}
OPS = {
    "write": "write",
    "write-fsync": "write, then fsync of each file (timed)",
    "write-nofsync": "write, durable=False (no fsync)",
    "ordered": "ordered, batched",
    "shuffled": "shuffled, batched (seed 0)",
    "unbatched": "ordered, unbatched",
    "read": "read bytes",
}
# operation labels that depend on the reader too
LABELS = {
    "write/ours": "write, durable (default: fsync per file)",
    "write/atdata07": "write (0.7 never fsyncs)",
}
# (key, reference ours key) pairs in table order; the ratio is ours' speed / this row's speed
ROWS = [
    ("write/ours", None),
    ("write-fsync/atdata07", "write/ours"),
    ("write/atdata07", "write/ours"),
    ("write-nofsync/ours", None),
    ("write/atdata07", "write-nofsync/ours"),
    ("ordered/ours", None),
    ("ordered/atdata07", "ordered/ours"),
    ("ordered/wds", "ordered/ours"),
    ("read/raw", "ordered/ours"),
    ("shuffled/ours", None),
    ("shuffled/atdata07", "shuffled/ours"),
    ("shuffled/wds", "shuffled/ours"),
    ("unbatched/ours", None),
    ("unbatched/atdata07", "unbatched/ours"),
    ("ordered-cold/ours", None),
    ("read-cold/raw", "ordered-cold/ours"),
]
# (scenario, description, ours key, theirs key, minimum ratio)
TARGETS = [
    (
        "B1",
        "ordered batched read >= 10x atdata 0.7 (moonshot 20x)",
        "ordered/ours",
        "ordered/atdata07",
        10.0,
    ),
    ("B1", "write >= 5x atdata 0.7", "write/ours", "write/atdata07", 5.0),
    ("B3", "durable write >= 1.5x atdata 0.7 + fsync", "write/ours", "write-fsync/atdata07", 1.5),
    ("B3", "write without fsync >= 1.5x atdata 0.7", "write-nofsync/ours", "write/atdata07", 1.5),
    ("B4", "durable write >= 1.5x atdata 0.7 + fsync", "write/ours", "write-fsync/atdata07", 1.5),
    ("B4", "write without fsync >= 1.5x atdata 0.7", "write-nofsync/ours", "write/atdata07", 1.5),
    ("B3", "read >= 3x atdata 0.7", "ordered/ours", "ordered/atdata07", 3.0),
    ("B3", "read within 2x of the page-cache read", "ordered/ours", "read/raw", 0.5),
    ("B4", "read within 1.5x of the page-cache read", "ordered/ours", "read/raw", 1 / 1.5),
]


def _speed(m: dict[str, Any] | None) -> float | None:
    """Bytes per second where known (comparable across readers of the same files), else samples/s."""
    if not m or not m.get("seconds"):
        return None
    return m.get("mb_per_s") or m.get("samples_per_s")


def ratio(ms: dict[str, Any], ours: str, theirs: str) -> float | None:
    a, b = ms.get(ours), ms.get(theirs)
    if not a or not b or not a.get("seconds") or not b.get("seconds"):
        return None
    if ours.startswith("write") or not theirs.endswith("/raw"):
        return a["samples_per_s"] / b["samples_per_s"]  # same samples: compare samples/s
    return _speed(a) / _speed(b)  # against raw bytes: compare MB/s of the same files


def _fmt(v: float | None, spec: str, scale: float = 1.0) -> str:
    return "-" if v is None else format(v * scale, spec)


def _check(m: dict[str, Any], expected: dict[str, Any]) -> str:
    if not m["ids"]:
        return "n/a"
    bad = sum(1 for ids in m["ids"] if ids != expected)
    return "ok" if not bad else f"FAIL ({bad}/{len(m['ids'])})"


def render_scenario(sc: dict[str, Any]) -> str:
    ms = sc["measurements"]
    lines = [
        f"### {sc['scenario']} {sc['title']}: `{sc['schema']}`",
        "",
        f"{sc['samples']:,} samples in {sc['shards']} shards, batch {sc['batch']} ({sc.get('elapsed_s', 0):.0f} s). "
        f"Reads are of the shards "
        f"written by ours (same bytes for every reader); writes are timed without data generation; "
        f"each write row's ratio compares it with the ours row above it (durable with durable, "
        f"no fsync with no fsync). "
        f"Warm = files read once just before (page-cache residency {_residency(sc)}); cold = evicted with "
        f"`posix_fadvise(DONTNEED)`. Median of `reps`; ratio = ours' speed / this row's speed.",
        "",
        "| operation | reader | cache | reps | samples/s | MB/s | ratio ours/this | first batch ms | CPU µs/sample | peak RSS MiB | exactly once |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, ref in ROWS:
        m = ms.get(key)
        if not m or not m.get("seconds"):
            continue
        op, reader = key.split("/")
        cold = op.endswith("-cold")
        op = op.removesuffix("-cold")
        r = ratio(ms, ref, key) if ref else None
        cache = "-" if op.startswith("write") else ("cold" if cold else "warm")
        lines.append(
            f"| {LABELS.get(key, OPS[op])} | {READERS[reader]} | {cache} | {m['reps']} | {_fmt(m.get('samples_per_s'), ',.0f')} | "
            f"{_fmt(m.get('mb_per_s'), ',.0f')} | {_fmt(r, '.2f')}{'x' if r else ''} | {_fmt(m.get('ttfb'), '.1f', 1e3)} | "
            f"{_fmt(m.get('cpu_us_per_sample'), '.2f')} | {_fmt(m.get('rss_mib'), ',.0f')} | {_check(m, sc['expected_ids'])} |"
        )
    if "unbatched/ours" in ms:
        lines.append(
            "\nUnbatched samples from ours hold zero-copy array views into the mapped shard: their MB/s counts "
            "bytes made available, not bytes touched (the id check reads one element per sample)."
        )
    if not sc.get("write_deterministic", True):
        lines.append("\n**Our writer produced different shard bytes across repetitions.**")
    return "\n".join(lines)


def _residency(sc: dict[str, Any]) -> str:
    vals = [v for v in sc.get("warm_cached_fraction", []) if v is not None]
    return f"{min(vals):.0%}" if vals else "unknown"


def render_targets(results: dict[str, Any]) -> str:
    lines = ["| scenario | target | measured | met |", "|---|---|---:|---|"]
    for sid, desc, ours, theirs, need in TARGETS:
        sc = results["scenarios"].get(sid)
        if sc is None:
            continue
        r = ratio(sc["measurements"], ours, theirs)
        if r is None:
            continue
        lines.append(f"| {sid} | {desc} | {r:.2f}x | {'yes' if r >= need else '**no**'} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def render_markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    head = [
        f"## Benchmark run {meta.get('started', '')}{' (--quick)' if meta.get('quick') else ''}",
        "",
        f"Machine: {meta.get('cpu')} ({meta.get('cores')} cores, {meta.get('mem_gib')} GiB), {meta.get('platform')}. "
        f"Ours: atdata {meta.get('ours_version')} @ {meta.get('git')} on Python {meta.get('python')}, "
        f"numpy {meta.get('numpy')}, msgpack {meta.get('msgpack')}; comparator: atdata 0.7.0b1 on Python "
        f"{meta.get('python07', '-')}; webdataset {meta.get('webdataset')}. Up to {meta.get('repeat')} repetitions "
        f"(fewer for a measurement past its {meta.get('budget_s'):.0f} s budget, never under 3). "
        f"Total {meta.get('elapsed_s', 0):.0f} s.",
        "",
    ]
    targets = render_targets(results)
    if targets:
        head += ["Targets (BENCHMARKS.md):", "", targets, ""]
    body = [render_scenario(sc) for sc in results["scenarios"].values()]
    return "\n".join(head) + "\n" + "\n\n".join(body) + "\n"


# --------------------------------------------------------------------------- environment
def _version(mod: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(mod)
    except Exception:
        return None


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def environment(runners: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
        if hasattr(os, "sysconf")
        else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "msgpack": _version("msgpack"),
        "webdataset": _version("webdataset"),
        "ours_version": _version("atdata"),
        "git": _git(),
    }
    if "atdata07" in runners:
        probe = subprocess.run(
            [runners["atdata07"].python, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=False,
        )
        meta["python07"] = probe.stdout.strip() or None
    return meta


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(render_markdown(json.loads(Path(arg).read_text())))
