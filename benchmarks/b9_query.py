"""B9: selective queries through shard manifests, beside a full scan, atdata 0.7 and DuckDB.

    uv run python -m benchmarks.b9_query [--samples 1000000] [--shards 100] [--reps 3]

Data: ``label:int`` (1,000 values), ``score:float``, ``id:str``, ``emb:float32[1024]`` (4 KiB),
written by ``atdata.write_samples`` (with manifests) in ``--shards`` shards, once sorted by label
and once shuffled. Queries: ``label == 7`` (0.1 %), ``label < 10`` (1 %), ``label < 100`` (10 %)
and an ``id`` lookup. For each, in one run with repetitions interleaved:

- ours: ``Dataset.where(query)`` iterated to the end (every matching sample decoded, array
  included), a fresh Dataset per repetition (manifests and offset indexes read again);
- full scan: ``Dataset.filter(python predicate)`` over the same shards (ours, every sample read);
- atdata 0.7.0b1: ``QueryExecutor.from_shard_urls(urls).query(where=...)`` on its own manifests
  (``*.manifest.json`` + ``*.manifest.parquet``, built with its ``ManifestBuilder``), in its
  venv (``benchmarks/.venv07``). It returns sample locations only: 0.7 cannot read a sample by
  them, so its time is the lookup alone, not the samples;
- DuckDB over the scalar fields exported to one Parquet file (``SELECT id ... WHERE ...``): the
  anchor for scanning scalar columns; like 0.7 it returns the rows' scalar fields, not samples.

Bytes read: ours = manifests + offset indexes read + the tar spans (header + padded body) of
the members read; full scan = every shard; 0.7 = its manifest files; DuckDB = the Parquet file
(an upper bound: it reads only the column chunks it needs). Shards opened: shards whose bytes
were read (a counting source factory). Page cache warm (every file was read before timing).
Results: a table on stdout and ``benchmarks/.data/b9.json``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

import atdata
from atdata.sources import open_source

DATA = Path(__file__).resolve().parent / ".data"
EMB = 1024  # float32: 4 KiB


@atdata.packable
class B9:
    label: int
    score: float
    id: str
    emb: NDArray[np.float32]


def generate(n: int, *, sort: bool, seed: int = 0) -> list[B9]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) * 1000 // n  # sorted: each label one contiguous run
    order = np.arange(n) if sort else rng.permutation(n)
    scores = rng.random(n)
    emb = rng.random(EMB).astype(np.float32)
    return [B9(int(labels[i]), float(scores[i]), f"id{i:08d}", emb) for i in order.tolist()]


QUERIES: dict[str, tuple[str, Callable[[Any], bool], str]] = {
    "0.1%": ("label == 7", lambda s: s.label == 7, "label = 7"),
    "1%": ("label < 10", lambda s: s.label < 10, "label < 10"),
    "10%": ("label < 100", lambda s: s.label < 100, "label < 100"),
}


def id_query(n: int) -> tuple[str, Callable[[Any], bool], str]:
    target = f"id{(n * 37 // 100):08d}"
    return (f"id == '{target}'", lambda s: s.id == target, f"id = '{target}'")


class Counting:
    def __init__(self) -> None:
        self.opened: set[str] = set()

    def __call__(self, url: str) -> Any:
        src = open_source(url)
        opened = self.opened

        class Wrapped:
            def __init__(self) -> None:
                self.url = src.url

            def local_path(self) -> Any:
                opened.add(url)
                return src.local_path()

            def peek_local_path(self) -> Any:
                return src.local_path()

            def open(self) -> Any:
                opened.add(url)
                return src.open()

            def read_range(self, a: int, b: int) -> Any:
                opened.add(url)
                return src.read_range(a, b)

            def read_sidecar(self, suffix: str) -> Any:
                return src.read_sidecar(suffix)

            def __getattr__(self, name: str) -> Any:
                return getattr(src, name)

        return Wrapped()


def run_ours(pattern: str, query: str) -> dict[str, Any]:
    opener = Counting()
    ds = atdata.Dataset[B9](pattern, source_factory=opener)
    t = time.perf_counter()
    q = ds.where(query)
    ids = [s.id for s in q]
    elapsed = time.perf_counter() - t
    shards = ds.shards
    member = 0
    for i, url in enumerate(shards.urls):
        if url not in opener.opened:
            continue
        idx = shards.offsets(i)
        mask = q._stages[0].fn.selector(shards).shard_mask(i)  # what was read of this shard
        sizes = idx.sizes if mask is None else idx.sizes[mask]
        member += int((512 + sizes + (-sizes % 512)).sum())
    side = sum(os.path.getsize(u + s) for u in shards.urls for s in (".manifest", ".idx"))
    return {
        "s": elapsed,
        "rows": len(ids),
        "bytes": member + side,
        "shards": len(opener.opened),
        "digest": hash(tuple(ids)),
    }


def run_scan(pattern: str, test: Callable[[Any], bool]) -> dict[str, Any]:
    ds = atdata.Dataset[B9](pattern)
    t = time.perf_counter()
    ids = [s.id for s in ds.filter(test)]
    elapsed = time.perf_counter() - t
    total = sum(os.path.getsize(u) for u in ds.urls)
    return {
        "s": elapsed,
        "rows": len(ids),
        "bytes": total,
        "shards": len(ds.urls),
        "digest": hash(tuple(ids)),
    }


def run_duckdb(parquet: str, sql_where: str) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    t = time.perf_counter()
    rows = con.execute(f"SELECT id FROM read_parquet('{parquet}') WHERE {sql_where}").fetchall()
    elapsed = time.perf_counter() - t
    con.close()
    return {"s": elapsed, "rows": len(rows), "bytes": os.path.getsize(parquet), "shards": 0}


_DRIVER07 = r"""
import json, sys, time, glob, os
from typing import Annotated
import numpy as np
from numpy.typing import NDArray
import atdata
from atdata.manifest import ManifestBuilder, ManifestWriter, QueryExecutor

@atdata.packable
class B9:
    label: int
    score: float
    id: str
    emb: NDArray[np.float32]

cmd, arg = sys.argv[1], json.loads(sys.argv[2])
if cmd == "build":
    for url in arg["urls"]:
        base = url[: -len(".tar")]
        builder = ManifestBuilder(sample_type=B9, shard_id=base)
        offset = 0
        for s in atdata.Dataset[B9](url).ordered():
            builder.add_sample(key=s.id, offset=offset, size=4300, sample=s)
            offset += 4608
        ManifestWriter(base).write(builder.build())
    print(json.dumps({"ok": True}))
else:
    where = eval(arg["where"])  # the benchmark's own fixed lambda text, not input
    out = []
    for _ in range(arg["reps"]):
        t = time.perf_counter()
        ex = QueryExecutor.from_shard_urls(arg["urls"])
        locs = ex.query(where=where)
        out.append({"s": time.perf_counter() - t, "rows": len(locs)})
    size = sum(os.path.getsize(p) for u in arg["urls"] for p in (u[:-4] + ".manifest.json", u[:-4] + ".manifest.parquet") if os.path.exists(p))
    print(json.dumps({"runs": out, "bytes": size}))
"""

PANDAS = {
    "label == 7": "lambda df: df['label'] == 7",
    "label < 10": "lambda df: df['label'] < 10",
    "label < 100": "lambda df: df['label'] < 100",
}


def drive07(python: Path, cmd: str, arg: dict[str, Any]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(_DRIVER07)
    try:
        out = subprocess.run(
            [str(python), f.name, cmd, json.dumps(arg)], capture_output=True, text=True, check=True
        )
    finally:
        os.unlink(f.name)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def prepare(root: Path, n: int, shards: int, python07: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant in ("sorted", "shuffled"):
        folder = root / variant
        pattern = str(folder / "b9-%06d.tar")
        brace = str(folder / f"b9-{{000000..{shards - 1:06d}}}.tar")
        if not (folder / f"b9-{shards - 1:06d}.tar.manifest").exists():
            folder.mkdir(parents=True, exist_ok=True)
            t = time.perf_counter()
            atdata.write_samples(
                generate(n, sort=variant == "sorted"), pattern, maxcount=n // shards
            )
            print(f"wrote {variant} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        ds = atdata.Dataset[B9](brace)
        parquet = folder / "scalars.parquet"
        if not parquet.exists():
            import pyarrow as pa
            import pyarrow.parquet as pq

            cols = ds.select(["label", "score", "id"])
            pq.write_table(pa.table(cols), parquet)
        if python07 is not None and not (folder / f"b9-{shards - 1:06d}.manifest.json").exists():
            t = time.perf_counter()
            drive07(python07, "build", {"urls": ds.urls})
            print(f"0.7 manifests for {variant} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        for u in ds.urls:  # warm the page cache
            with open(u, "rb") as f:
                while f.read(1 << 24):
                    pass
        out[variant] = {"brace": brace, "urls": ds.urls, "parquet": str(parquet)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--shards", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-07", action="store_true")
    args = ap.parse_args()
    n = args.samples
    root = DATA / f"b9-{n}-{args.shards}"
    python07 = None
    if not args.no_07:
        from . import venv07

        python07 = venv07.ensure(quiet=True)
    sets = prepare(root, n, args.shards, python07)
    queries = dict(QUERIES)
    queries["id"] = id_query(n)
    results: list[dict[str, Any]] = []
    for variant, info in sets.items():
        run_ours(info["brace"], "label == 0")  # warm-up: codecs built, imports done
        for sel, (text, test, sql) in queries.items():
            runs: dict[str, list[dict[str, Any]]] = {"ours": [], "scan": [], "duckdb": []}
            for _ in range(args.reps):  # interleaved
                runs["ours"].append(run_ours(info["brace"], text))
                runs["scan"].append(run_scan(info["brace"], test))
                runs["duckdb"].append(run_duckdb(info["parquet"], sql))
            assert runs["ours"][0]["digest"] == runs["scan"][0]["digest"], "ours != full scan"
            row: dict[str, Any] = {"variant": variant, "query": text, "selectivity": sel}
            for name, rs in runs.items():
                row[name] = {
                    "s": statistics.median(r["s"] for r in rs),
                    "rows": rs[0]["rows"],
                    "bytes": rs[0]["bytes"],
                    "shards": rs[0]["shards"],
                }
            if python07 is not None and text in PANDAS:
                got = drive07(
                    python07,
                    "query",
                    {"urls": info["urls"], "where": PANDAS[text], "reps": args.reps},
                )
                row["atdata07"] = {
                    "s": statistics.median(r["s"] for r in got["runs"]),
                    "rows": got["runs"][0]["rows"],
                    "bytes": got["bytes"],
                    "shards": 0,
                }
            results.append(row)
            print(_line(row), flush=True)
    DATA.mkdir(exist_ok=True)
    meta = {
        "samples": n,
        "shards": args.shards,
        "reps": args.reps,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (DATA / "b9.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(table(results, n))


def _line(row: dict[str, Any]) -> str:
    o, s = row["ours"], row["scan"]
    return (
        f"{row['variant']:8} {row['query']:22} ours {o['s'] * 1e3:8.1f} ms  scan {s['s'] * 1e3:8.1f} ms "
        f"x{s['s'] / o['s']:6.1f}  bytes {o['bytes'] / s['bytes'] * 100:6.2f}%  shards {o['shards']}"
    )


def table(results: list[dict[str, Any]], n: int) -> str:
    head = (
        "| variant | query | rows | ours ms | full scan ms | speed-up | ours bytes (% of scan) "
        "| shards opened | atdata 0.7 QueryExecutor ms (locations only) | DuckDB ms (scalars) |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in results:
        o, s, d = r["ours"], r["scan"], r["duckdb"]
        a = r.get("atdata07")
        old = "-" if a is None else f"{a['s'] * 1e3:.1f} ({a['rows']:,} rows)"
        lines.append(
            f"| {r['variant']} | `{r['query']}` | {o['rows']:,} | {o['s'] * 1e3:.1f} | "
            f"{s['s'] * 1e3:.1f} | {s['s'] / o['s']:.1f}x | {o['bytes'] / 1e6:.1f} MB "
            f"({o['bytes'] / s['bytes'] * 100:.2f} %) | {o['shards']} | "
            f"{old} | "
            f"{d['s'] * 1e3:.1f} |"
        )
    return head + "\n".join(lines)


if __name__ == "__main__":
    main()
