"""B6: index operations at 10k entries, for every provider, beside atdata 0.7's providers.

    uv run python -m benchmarks.b6_index [--entries 10000] [--versions 4] [--reps 5] [--quick]

Starts its own throwaway servers on loopback (the ``RedisServer`` / ``PostgresCluster`` helpers of
``tests/services.py``): redis-server with the append-only file (``appendfsync everysec``, the
setting ``atdata diagnose`` recommends) and a PostgreSQL cluster (``synchronous_commit`` on,
``fsync`` off: the disk is not what is measured). Ours is measured through the public
``Index`` facade, one process, one operation at a time:

- ``insert``: ``Index.insert(shard, name)`` of a one-sample shard registered in place (this
  includes hashing and counting the shard, reported apart as ``inspect_shard``);
- ``get_key``: ``Index.get("name@3")``, one exact version;
- ``get_name``: ``Index.get("name")``, a name resolved to its latest version;
- ``list``: ``Index.list_datasets()``, the latest version of every name (reads every entry).

atdata 0.7.0b1 runs in ``benchmarks/.venv07`` (Python 3.12, made by ``benchmarks/venv07.py``)
through a subprocess, on the same servers (its Redis keys in database 1), with the calls its
``Index`` makes: ``insert`` = ``store_entry`` + ``store_label`` (what ``insert_dataset`` does
once shards are written); ``get_key`` = ``get_label(name, version)`` + ``get_entry_by_cid``
(``Index.get_label``); ``get_name`` = ``get_label(name)`` + ``get_entry_by_cid``
(``Index.get_dataset``); ``find_by_name`` = ``get_entry_by_name`` (its provider's name lookup);
``list`` = ``iter_entries()``.

Entries: ``entries / versions`` names with ``versions`` versions each. Latencies are measured per
call (``perf_counter_ns``); reads use a seeded sample of names, repeated ``reps`` times; each
figure is the median over repetitions of that repetition's p50 (p99). Slow operations stop after
a time budget per repetition (at least 3 calls). Each read is checked: the right version comes
back, and ``list`` returns every name once. Results: a table on stdout and
``benchmarks/.data/b6.json``.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / ".data"
TARGET_GET_NAME_P50_MS = 1.0
OPS = ("insert", "get_key", "get_name", "find_by_name", "list")


# --------------------------------------------------------------------------------- timing
def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def time_calls(fn: Callable[[Any], Any], args: list[Any], budget_s: float) -> list[float]:
    """Seconds per call of ``fn(arg)`` for each arg, stopping after ``budget_s`` (3 calls min)."""
    out: list[float] = []
    deadline = time.perf_counter() + budget_s
    for arg in args:
        t0 = time.perf_counter_ns()
        fn(arg)
        out.append((time.perf_counter_ns() - t0) / 1e9)
        if len(out) >= 3 and time.perf_counter() > deadline:
            break
    return out


def summarize(reps: list[list[float]]) -> dict[str, Any]:
    return {
        "p50_ms": statistics.median(percentile(r, 0.50) for r in reps) * 1e3,
        "p99_ms": statistics.median(percentile(r, 0.99) for r in reps) * 1e3,
        "calls": sum(len(r) for r in reps),
        "reps": len(reps),
    }


# ------------------------------------------------------------------------------ ours
def bench_ours(
    label: str, open_provider: Callable[[], Any], work: Path, shard: str, cfg: argparse.Namespace
) -> dict[str, Any]:
    from atdata.index import Index
    from atdata.index.ingest import inspect_shard
    from atdata.stores import LocalDiskStore

    names = [f"ds{i:05d}" for i in range(cfg.entries // cfg.versions)]
    index = Index(open_provider(), LocalDiskStore(work / f"{label}-data"))
    result: dict[str, Any] = {"entries": len(names) * cfg.versions}
    try:
        say(f"  {label}: inserting {len(names) * cfg.versions} entries")
        inserts: list[float] = []
        t_all = time.perf_counter()
        for _ in range(cfg.versions):
            inserts += time_calls(lambda n: index.insert(shard, n), names, float("inf"))
        result["insert"] = summarize([inserts]) | {
            "per_s": len(inserts) / (time.perf_counter() - t_all)
        }
        result["inspect_shard"] = summarize([time_calls(inspect_shard, [shard] * 2000, 5)])

        rng = random.Random(6)
        sample = [rng.choice(names) for _ in range(cfg.samples)]
        versions = [rng.randint(1, cfg.versions) for _ in sample]

        def get_key(i: int) -> None:
            entry = index.get(f"{sample[i]}@{versions[i]}")
            assert entry.version == versions[i] and entry.name == sample[i]

        def get_name(i: int) -> None:
            entry = index.get(sample[i])
            assert entry.version == cfg.versions and entry.name == sample[i]

        def list_all(_: int) -> None:
            found = index.list_datasets()
            assert [e.name for e in found] == names
            assert all(e.version == cfg.versions for e in found)

        per_rep: dict[str, list[list[float]]] = {"get_key": [], "get_name": [], "list": []}
        for rep in range(cfg.reps):
            say(f"  {label}: reads, repetition {rep + 1}/{cfg.reps}")
            idx = list(range(len(sample)))
            per_rep["get_key"].append(time_calls(get_key, idx, cfg.budget))
            per_rep["get_name"].append(time_calls(get_name, idx, cfg.budget))
            per_rep["list"].append(time_calls(list_all, list(range(cfg.list_calls)), cfg.budget))
        for op, reps in per_rep.items():
            result[op] = summarize(reps)
        result["checked"] = True
    finally:
        index.close()
    return result


# ---------------------------------------------------------------------------- atdata 0.7
DRIVER_07 = r"""
import json, random, statistics, sys, time
spec = json.loads(sys.argv[1])
from atdata.index import LocalDatasetEntry
if spec["provider"] == "sqlite":
    from atdata.providers._sqlite import SqliteProvider
    p = SqliteProvider(path=spec["path"])
else:
    from redis import Redis
    from atdata.providers._redis import RedisProvider
    p = RedisProvider(Redis.from_url(spec["url"]))

def pct(xs, q):
    xs = sorted(xs); k = (len(xs) - 1) * q; lo = int(k); hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)

def timed(fn, args, budget):
    out = []; deadline = time.perf_counter() + budget
    for a in args:
        t0 = time.perf_counter_ns(); fn(a); out.append((time.perf_counter_ns() - t0) / 1e9)
        if len(out) >= 3 and time.perf_counter() > deadline: break
    return out

def summary(reps):
    return {"p50_ms": statistics.median(pct(r, 0.5) for r in reps) * 1e3,
            "p99_ms": statistics.median(pct(r, 0.99) for r in reps) * 1e3,
            "calls": sum(len(r) for r in reps), "reps": len(reps)}

V = spec["versions"]; names = [f"ds{i:05d}" for i in range(spec["entries"] // V)]
cids = {}
def insert(nv):
    name, v = nv
    e = LocalDatasetEntry(name=name, schema_ref="local://schemas/b6.Point@1.0.0",
                          data_urls=[spec["shard"] + f"#{name}-v{v}"], metadata={"count": 1})
    p.store_entry(e); p.store_label(name=name, cid=e.cid, version=str(v))
    cids[nv] = e.cid
t = time.perf_counter()
ins = timed(insert, [(n, v) for v in range(1, V + 1) for n in names], float("inf"))
res = {"entries": len(ins), "insert": summary([ins]) | {"per_s": len(ins) / (time.perf_counter() - t)}}
rng = random.Random(6)
sample = [rng.choice(names) for _ in range(spec["samples"])]
versions = [rng.randint(1, V) for _ in sample]
wrong = {"get_name": 0, "find_by_name": 0}
def get_key(i):
    cid, _ = p.get_label(sample[i], str(versions[i])); e = p.get_entry_by_cid(cid)
    assert e.name == sample[i] and e.data_urls[0].endswith(f"-v{versions[i]}")
def get_name(i):
    cid, _ = p.get_label(sample[i]); e = p.get_entry_by_cid(cid)
    assert e.name == sample[i]
    wrong["get_name"] += not e.data_urls[0].endswith(f"-v{V}")
def find_by_name(i):
    e = p.get_entry_by_name(sample[i])
    assert e.name == sample[i]
    wrong["find_by_name"] += not e.data_urls[0].endswith(f"-v{V}")
def list_all(_):
    found = list(p.iter_entries())
    assert sorted({e.name for e in found}) == names and len(found) == len(names) * V
reps = {"get_key": [], "get_name": [], "find_by_name": [], "list": []}
idx = list(range(len(sample)))
for rep in range(spec["reps"]):
    print(f"  0.7-{spec['provider']}: reads, repetition {rep + 1}/{spec['reps']}", file=sys.stderr, flush=True)
    reps["get_key"].append(timed(get_key, idx, spec["budget"]))
    reps["get_name"].append(timed(get_name, idx, spec["budget"]))
    reps["find_by_name"].append(timed(find_by_name, idx, spec["budget"]))
    reps["list"].append(timed(list_all, list(range(spec["list_calls"])), spec["budget"]))
for op, r in reps.items():
    res[op] = summary(r)
for op, n in wrong.items():  # answers that were not the newest version
    res[op]["not_latest"] = n / res[op]["calls"]
res["checked"] = True
print(json.dumps(res))
"""


def bench_07(
    provider: str, target: str, shard: str, work: Path, cfg: argparse.Namespace
) -> dict[str, Any]:
    from . import venv07

    python = str(venv07.ensure(quiet=True))
    spec = {
        "provider": provider,
        "path": target,
        "url": target,
        "shard": shard,
        "entries": cfg.entries,
        "versions": cfg.versions,
        "samples": cfg.samples,
        "reps": cfg.reps,
        "budget": cfg.budget,
        "list_calls": cfg.list_calls,
    }
    say(f"  0.7-{provider}: inserting {cfg.entries} entries (subprocess, {python})")
    proc = subprocess.run(
        [python, "-c", DRIVER_07, json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
        check=False,
        cwd=work,  # an empty directory: never import our own atdata by accident
    )
    if proc.returncode != 0:
        raise RuntimeError(f"atdata 0.7 {provider} driver failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------------------- report
def render(results: dict[str, dict[str, Any]]) -> str:
    cols = list(results)
    lines = [
        "| operation (p50 / p99, ms) | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for op in OPS:
        cells = []
        for col in cols:
            r = results[col].get(op)
            if r is None:
                cells.append("n/a")
                continue
            cell = f"{fmt(r['p50_ms'])} / {fmt(r['p99_ms'])}"
            if r.get("not_latest"):
                cell += f" ({r['not_latest']:.0%} stale)"
            cells.append(cell)
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    lines.append(
        "| insert throughput (/s) | "
        + " | ".join(f"{results[c]['insert']['per_s']:.0f}" for c in cols)
        + " |"
    )
    lines.append("")
    lines.append("Speed-up of ours over atdata 0.7 (p50 of 0.7 / p50 of ours, same provider):")
    for ours, theirs in (("sqlite", "0.7-sqlite"), ("redis", "0.7-redis")):
        if ours in results and theirs in results:
            parts = []
            for op in ("insert", "get_key", "get_name", "list"):
                a, b = results[ours].get(op), results[theirs].get(op)
                if a and b:
                    parts.append(f"{op} {b['p50_ms'] / a['p50_ms']:.1f}x")
            lines.append(f"- {ours}: " + ", ".join(parts))
    verdicts = []
    for col in cols:
        if col.startswith("0.7"):
            continue
        p50 = results[col]["get_name"]["p50_ms"]
        ok = "PASS" if p50 < TARGET_GET_NAME_P50_MS else "FAIL"
        verdicts.append(f"{col} {fmt(p50)} ms {ok}")
    lines.append(f"- target get_name p50 < {TARGET_GET_NAME_P50_MS:g} ms: " + ", ".join(verdicts))
    return "\n".join(lines)


def fmt(ms: float) -> str:
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--versions", type=int, default=4, help="versions per dataset name")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--samples", type=int, default=1000, help="calls per read op and repetition")
    ap.add_argument("--budget", type=float, default=5.0, help="seconds per read op and repetition")
    ap.add_argument("--list-calls", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="1,000 entries, 2 repetitions")
    ap.add_argument("--no-07", action="store_true", help="skip atdata 0.7")
    ap.add_argument("--out", type=Path, default=DATA / "b6.json")
    cfg = ap.parse_args(argv)
    if cfg.quick:
        cfg.entries, cfg.reps, cfg.samples, cfg.budget = 1000, 2, 300, 2.0

    sys.path.insert(0, str(ROOT / "tests"))
    import atdata
    from atdata.index.providers.postgres import PostgresProvider
    from atdata.index.providers.redis import RedisProvider
    from atdata.index.providers.sqlite import SQLiteProvider
    from services import PostgresCluster, RedisServer  # type: ignore[import-not-found]

    from .report import environment

    work = Path(tempfile.mkdtemp(prefix="atdata-b6-"))
    shard_dir = work / "shards"
    shard_dir.mkdir()

    @atdata.packable
    class B6Point:
        x: int
        name: str

    atdata.write_samples([B6Point(x=1, name="one")], str(shard_dir / "b6-%06d.tar"))
    shard = str(shard_dir / "b6-000000.tar")

    say("starting redis-server (AOF, appendfsync everysec) and a PostgreSQL cluster")
    redis_server = RedisServer(extra_args=["--appendfsync", "everysec"])
    pg = PostgresCluster()
    results: dict[str, dict[str, Any]] = {}
    try:
        redis_server.start()
        pg.start()
        tag = uuid.uuid4().hex[:8]
        ours: dict[str, Callable[[], Any]] = {
            "sqlite": lambda: SQLiteProvider(work / "ours-index.db"),
            "redis": lambda: RedisProvider(redis_server.url, prefix=f"b6{tag}:"),
            "postgres": lambda: PostgresProvider(pg.dsn, schema=f"b6_{tag}"),
        }
        for name, opener in ours.items():
            say(f"ours, {name}:")
            results[name] = bench_ours(name, opener, work, shard, cfg)
        if not cfg.no_07:
            say("atdata 0.7:")
            results["0.7-sqlite"] = bench_07("sqlite", str(work / "07-index.db"), shard, work, cfg)
            url07 = redis_server.url.rsplit("/", 1)[0] + "/1"
            results["0.7-redis"] = bench_07("redis", url07, shard, work, cfg)
        meta = environment({})
        meta.update(
            redis_server=subprocess.run(
                [redis_server.argv[0], "--version"], capture_output=True, text=True, check=False
            ).stdout.strip(),
            redis_config="appendonly yes, appendfsync everysec, no RDB",
            postgres_config="synchronous_commit on, fsync off, full_page_writes off",
            measured_through="atdata.Index facade (ours); atdata 0.7 provider calls its Index makes",
        )
    finally:
        redis_server.close()
        pg.close()
        import shutil

        shutil.rmtree(work, ignore_errors=True)

    config = {k: v for k, v in vars(cfg).items() if k != "out"}
    doc = {"scenario": "B6", "config": config, "environment": meta, "results": results}
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(json.dumps(doc, indent=2))
    print(f"B6: index operations, {cfg.entries} entries ({cfg.versions} versions per name)")
    print(f"machine: {meta.get('cpu')}, {meta.get('cores')} cores, Python {meta.get('python')}")
    print(render(results))
    print(f"\nwritten to {cfg.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
