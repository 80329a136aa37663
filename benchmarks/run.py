"""Run the benchmark suite: ``python -m benchmarks.run [--quick] [--scenarios B1,B3] [--repeat 5]``.

For each scenario (BENCHMARKS.md): generate the data; write it with our writer and with atdata 0.7
(timed); then, on the shards OUR writer produced (so every reader reads the same bytes), time
ordered and shuffled batched reads for ours, atdata 0.7 and webdataset raw, ours unbatched, and
the page-cache read of the same bytes, warm and cold. Repetitions are interleaved round by round
so that drift in a noisy machine hits every reader alike; each figure is the median. Every read
is checked for exactly-once delivery. Results go to ``benchmarks/.data/results-*.json`` (and a
markdown rendering beside it) and are printed as one table per scenario.
"""

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import venv07
from .measure import Runner, Series, cached_fraction, drop_cache, run_driver, warm_cache
from .report import environment, render_markdown
from .scenarios import SCENARIOS, Scenario, expected_digest

DATA = Path(__file__).resolve().parent / ".data"
PATTERN = "data-%06d.tar"
MIN_REPS = 3  # reads: never fewer repetitions than this, whatever the budget
MIN_WRITE_REPS = 1
QUICK_REPEAT = 3


@dataclass(frozen=True)
class Measurement:
    op: str  # driver op: write, ordered, shuffled, unbatched, read
    reader: str  # ours, atdata07, wds, raw
    cold: bool = False

    @property
    def key(self) -> str:
        return f"{self.op}{'-cold' if self.cold else ''}/{self.reader}"


def runners(with_07: bool) -> dict[str, Runner]:
    here = sys.executable
    out = {
        "ours": Runner("ours", here, "benchmarks.drivers.ours_driver"),
        "wds": Runner("wds", here, "benchmarks.drivers.wds_driver"),
        "raw": Runner("raw", here, "benchmarks.drivers.raw_driver"),
    }
    if with_07:
        out["atdata07"] = Runner(
            "atdata07", str(venv07.ensure()), "benchmarks.drivers.atdata07_driver"
        )
    return out


def read_plan(with_07: bool, unbatched_07: bool) -> list[Measurement]:
    """Warm measurements first, cold ones last in each round (cold evicts the files)."""
    plan = [Measurement("read", "raw")]
    for op in ("ordered", "shuffled"):
        plan += [Measurement(op, "ours"), Measurement(op, "wds")]
        if with_07:
            plan.append(Measurement(op, "atdata07"))
    plan.append(Measurement("unbatched", "ours"))
    if with_07 and unbatched_07:
        plan.append(Measurement("unbatched", "atdata07"))
    plan += [Measurement("read", "raw", cold=True), Measurement("ordered", "ours", cold=True)]
    return plan


def _repeat_for(sc: Scenario, args: argparse.Namespace) -> int:
    for item in args.repeat_for or []:
        sid, _, n = item.partition("=")
        if sid == sc.id:
            return int(n)
    return args.repeat


def run_scenario(
    sc: Scenario, args: argparse.Namespace, run: dict[str, Runner], log: Path
) -> dict[str, Any]:
    started = time.perf_counter()
    n, per_shard = sc.size(args.quick)
    shards = sc.shards(args.quick)
    if args.samples and args.samples < n:  # smoke-test size: same shard count, fewer samples
        n = args.samples
        per_shard = max(1, -(-n // shards))
        shards = -(-n // per_shard)
    base = args.data_dir / f"{sc.id}-{n}"
    spec = {
        "scenario": sc.id,
        "n": n,
        "per_shard": per_shard,
        "shards": shards,
        "batch": sc.batch,
        "seed": 0,
        "pattern": PATTERN,
    }
    ours_dir = str(base / "ours")
    files = [str(Path(ours_dir) / (PATTERN % i)) for i in range(shards)]
    expected = expected_digest(n)
    reps = _repeat_for(sc, args)
    series: dict[str, Series] = {}
    spent: dict[str, float] = {}
    print(
        f"\n== {sc.id} {sc.title}: {n:,} samples in {shards} shards, batch {sc.batch}, up to {reps} reps",
        flush=True,
    )

    def measure(m: Measurement, rep: int, extra: dict[str, Any], min_reps: int = MIN_REPS) -> None:
        if m.reader not in run:
            return
        s = series.setdefault(m.key, Series())
        if rep >= min_reps and spent.get(m.key, 0.0) >= args.budget:
            return  # slow measurement: enough repetitions for its time budget
        before = None
        if m.cold:
            drop_cache(files)
            before = cached_fraction(files)
        t0 = time.perf_counter()
        res = run_driver(run[m.reader], dict(spec, op=m.op, **extra), log)
        spent[m.key] = spent.get(m.key, 0.0) + time.perf_counter() - t0
        if "ids" in res:
            res["exactly_once"] = res["ids"] == expected
            if not res["exactly_once"]:
                print(f"   !! {m.key}: delivered {res['ids']} expected {expected}", flush=True)
        if before is not None:
            res["cached_before"] = before
        s.runs.append(res)
        secs, count = res["seconds"], res.get("ids", {}).get("count", res.get("items", 0))
        print(
            f"   rep {rep + 1} {m.key:<22} {secs:8.3f} s {count / secs if secs else 0:>12,.0f} samples/s",
            flush=True,
        )

    # -- writes ------------------------------------------------------------------------------
    # Like with like: ours durable (fsync before each rename, the default) against 0.7 followed by
    # an fsync of every file it wrote (timed); ours with durable=False against 0.7 as it is (0.7
    # never fsyncs). Each write starts from a clean page cache (os.sync, untimed), so no writer
    # pays for the writeback of the one before.
    write_reps = min(reps, args.write_repeat)
    plan = [
        (Measurement("write", "atdata07"), "atdata07"),
        (Measurement("write-fsync", "atdata07"), "atdata07"),
        (Measurement("write", "ours"), "ours"),
        (Measurement("write-nofsync", "ours"), "ours-nofsync"),
    ]
    for rep in range(write_reps):
        for m, where in plan:
            os.sync()
            measure(m, rep, {"dir": str(base / where)}, MIN_WRITE_REPS)
    if not args.keep_data:
        shutil.rmtree(base / "atdata07", ignore_errors=True)
        shutil.rmtree(base / "ours-nofsync", ignore_errors=True)
    runs = series["write/ours"].runs + series.get("write-nofsync/ours", Series()).runs
    shas = {r.get("shards_sha256") for r in runs}
    os.sync()
    if args.writes_only:
        reps = 0

    # -- reads, interleaved by round -------------------------------------------------------------
    plan = read_plan("atdata07" in run, args.unbatched_07)
    warm_state = []
    for rep in range(reps):
        warm_cache(files)
        warm_state.append(cached_fraction(files))
        for m in plan:
            measure(m, rep, {"dir": ours_dir})

    if not args.keep_data:
        shutil.rmtree(base, ignore_errors=True)
    return {
        "scenario": sc.id,
        "title": sc.title,
        "schema": sc.schema_text(),
        "samples": n,
        "shards": shards,
        "per_shard": per_shard,
        "batch": sc.batch,
        "expected_ids": expected,
        "write_deterministic": len(shas) == 1,
        "warm_cached_fraction": warm_state,
        "measurements": {k: s.summary() for k, s in series.items()},
        "elapsed_s": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="scaled-down sizes (B1: 100k samples)")
    p.add_argument("--scenarios", default="B1,B2,B3,B4", help="comma-separated ids (default: all)")
    p.add_argument(
        "--repeat",
        type=int,
        help=f"repetitions per measurement, median reported (default 5; {QUICK_REPEAT} with --quick)",
    )
    p.add_argument(
        "--repeat-for", action="append", metavar="ID=N", help="per-scenario repetitions, e.g. B1=3"
    )
    p.add_argument(
        "--write-repeat", type=int, default=3, help="repetitions of the writes (default 3)"
    )
    p.add_argument(
        "--budget",
        type=float,
        default=120.0,
        help=f"seconds per measurement after which it stops repeating (at least {MIN_REPS} reps)",
    )
    p.add_argument("--no-atdata07", action="store_true", help="skip the atdata 0.7 comparator")
    p.add_argument(
        "--unbatched-07", action="store_true", help="also time atdata 0.7 unbatched reads"
    )
    p.add_argument("--writes-only", action="store_true", help="time the writes only, no reads")
    p.add_argument(
        "--keep-data", action="store_true", help="keep the generated shards (in --data-dir)"
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DATA,
        help="where the shards are generated (default benchmarks/.data; the tests give their own)",
    )
    p.add_argument(
        "--out", type=Path, help="results JSON (default benchmarks/.data/results-<time>.json)"
    )
    p.add_argument(
        "--samples", type=int, help="at most this many samples per scenario (smoke tests)"
    )
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = QUICK_REPEAT if args.quick else 5

    ids = [s.strip().upper() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in ids if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or DATA / f"results-{stamp}{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix(".log")
    run = runners(not args.no_atdata07)
    t0 = time.perf_counter()
    results: dict[str, Any] = {
        "meta": environment(run)
        | {
            "quick": args.quick,
            "repeat": args.repeat,
            "budget_s": args.budget,
            "started": stamp,
            "log": str(log),
        },
        "scenarios": {},
    }
    for sid in ids:
        results["scenarios"][sid] = run_scenario(SCENARIOS[sid], args, run, log)
        results["meta"]["elapsed_s"] = time.perf_counter() - t0
        out.write_text(json.dumps(results, indent=1))
    md = render_markdown(results)
    out.with_suffix(".md").write_text(md)
    print("\n" + md)
    print(
        f"results: {out}\nmarkdown: {out.with_suffix('.md')}\ntotal {time.perf_counter() - t0:.0f} s"
    )
    failed = [
        f"{sid} {key}"
        for sid, sc in results["scenarios"].items()
        for key, m in sc["measurements"].items()
        if any(ids != sc["expected_ids"] for ids in m["ids"])
    ]
    if failed:
        print("EXACTLY-ONCE CHECK FAILED: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
