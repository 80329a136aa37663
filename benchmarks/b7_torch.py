"""B7: the training feed. B3 images and B1 tiny records through the torch paths into tensors.

    uv run python -m benchmarks.b7_torch [--quick] [--repeat 3] [--workers 0,1,2] [--no-atdata07]

For each scenario (B3: batches of 64; B1: batches of 1024) the shards are written once with our
writer; then, page cache warm, every round runs each reader once, each in its own child process
(so peak memory is its own): webdataset (``WebDataset(urls, shardshuffle=False)`` with its
default ``split_by_worker``, the same msgpack decode, ``.batched`` into tensors) through a
``DataLoader`` with 0/1/2 workers; ours, ``ds.to_torch()`` through a ``DataLoader`` with 0/1/2
workers; ours, ``atdata.torch.feed`` with 1/2 reader threads; our plain ``ordered()`` batches and
atdata 0.7's (numpy, in process: the 0.7 venv has no torch, and ``torch.from_numpy`` costs
nothing); the page-cache read of the same bytes; and the time to the first batch after resuming
at 50 %. Every pass is checked for exactly-once delivery. Figures are medians of the rounds.

Peak memory is reported twice: ``rss`` is the driver process's ``ru_maxrss`` (wait4), ``pss`` the
peak of the summed PSS of the driver and its DataLoader workers (sampled at 10 Hz).
Results: ``benchmarks/.data/b7-<time>.json`` and ``.md``.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from . import venv07
from .measure import Runner, Series, run_driver, warm_cache
from .report import environment
from .scenarios import SCENARIOS, expected_digest

DATA = Path(__file__).resolve().parent / ".data"
PATTERN = "data-%06d.tar"
BATCH = {"B3": 64, "B1": 1024}
QUICK = {"B3": 4_000, "B1": 100_000}


def _runners(with_07: bool) -> dict[str, Runner]:
    here = sys.executable
    out = {
        "ours": Runner("ours", here, "benchmarks.drivers.ours_driver"),
        "torch": Runner("torch", here, "benchmarks.drivers.torch_driver"),
        "wds": Runner("wds", here, "benchmarks.drivers.torch_wds_driver"),
        "raw": Runner("raw", here, "benchmarks.drivers.raw_driver"),
    }
    if with_07:
        out["atdata07"] = Runner(
            "atdata07", str(venv07.ensure()), "benchmarks.drivers.atdata07_driver"
        )
    return out


def _plan(workers: list[int], threads: list[int]) -> list[tuple[str, str, str, int | None]]:
    """(row key, runner, op, workers) in the order of one round."""
    rows: list[tuple[str, str, str, int | None]] = [("page cache read", "raw", "read", None)]
    rows += [(f"webdataset + DataLoader w={w}", "wds", "loader", w) for w in workers]
    rows += [(f"ours to_torch + DataLoader w={w}", "torch", "loader", w) for w in workers]
    rows += [(f"ours atdata.torch.loader w={w}", "torch", "tloader", w) for w in workers]
    rows += [(f"ours feed threads={t}", "torch", "feed", t) for t in threads]
    rows += [("ours ordered() (numpy, no torch)", "ours", "ordered", None)]
    rows += [("atdata 0.7 ordered (numpy)", "atdata07", "ordered", None)]
    rows += [("resume at 50 %", "torch", "resume", None)]
    return rows


def run_scenario(sid: str, args: argparse.Namespace, run: dict[str, Runner], log: Path) -> Any:
    sc = SCENARIOS[sid]
    n = args.size.get(sid) or (QUICK[sid] if args.quick else sc.samples)
    shards = sc.samples // sc.per_shard  # the scenario's shard count at any size
    per_shard = -(-n // shards)
    base = DATA / f"B7-{sid}-{n}"
    spec: dict[str, Any] = {
        "scenario": sid,
        "n": n,
        "per_shard": per_shard,
        "shards": shards,
        "batch": BATCH[sid],
        "seed": 0,
        "pattern": PATTERN,
        "dir": str(base),
    }
    print(f"\n== B7/{sid} {sc.title}: {n:,} samples in {shards} shards, batch {BATCH[sid]}")
    if not (base / (PATTERN % (shards - 1))).exists():
        run_driver(run["ours"], dict(spec, op="write"), log)
    files = [str(base / (PATTERN % i)) for i in range(shards)]
    expected = expected_digest(n)
    series: dict[str, Series] = {}
    rows = _plan(args.workers, args.threads)
    for rep in range(args.repeat):
        warm_cache(files)
        for key, runner, op, workers in rows:
            if runner not in run or (args.only and not any(o in key for o in args.only)):
                continue
            res = run_driver(run[runner], dict(spec, op=op, workers=workers), log)
            if "ids" in res:
                res["exactly_once"] = res["ids"] == expected
                if not res["exactly_once"]:
                    print(f"   !! {key}: delivered {res['ids']} expected {expected}", flush=True)
            series.setdefault(key, Series()).runs.append(res)
            speed = n / res["seconds"] if op != "resume" and res["seconds"] else 0
            print(
                f"   rep {rep + 1} {key:<36} {res['seconds']:8.3f} s {speed:>12,.0f} /s", flush=True
            )
    if not args.keep_data:
        shutil.rmtree(base, ignore_errors=True)
    out: dict[str, Any] = {"scenario": sid, "title": sc.title, "samples": n, "shards": shards}
    out["batch"] = BATCH[sid]
    out["rows"] = {}
    for key, s in series.items():
        summary = s.summary()
        summary["tree_pss_mib"] = max((r.get("tree_pss_mib") or 0 for r in s.runs), default=None)
        summary["exactly_once"] = all(r.get("exactly_once", True) for r in s.runs)
        if key.startswith("resume"):
            for name in ("torch_w0", "loader_w2", "feed"):
                summary[f"{name}_ms"] = s.median(f"{name}_ms")
                summary[f"{name}_exact"] = all(r.get(f"{name}_exact") for r in s.runs)
        out["rows"][key] = summary
    return out


def _torch_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return None


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"B7 (torch feed) on {meta.get('cpu')}, {meta.get('cores')} cores, "
        f"{meta.get('mem_gib')} GiB, no GPU; torch {meta.get('torch')}, "
        f"webdataset {meta.get('webdataset')}, Python {meta.get('python')}, git {meta.get('git')}",
        "",
    ]
    for sid, sc in results["scenarios"].items():
        rows = sc["rows"]
        lines.append(
            f"### B7/{sid} {sc['title']}: {sc['samples']:,} samples, {sc['shards']} shards, "
            f"batch {sc['batch']}, page cache warm"
        )
        lines.append("")
        wds = [r["samples_per_s"] for k, r in rows.items() if k.startswith("webdataset")]
        best_wds = max((v for v in wds if v), default=None)
        lines.append(
            "| reader | samples/s | GB/s | vs wds best | first batch ms | RSS MiB | tree PSS MiB "
            "| exactly once |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---|")
        for key, r in rows.items():
            if key.startswith("resume"):
                continue
            sps = r.get("samples_per_s")
            ratio = sps / best_wds if sps and best_wds else None
            lines.append(
                f"| {key} | {_fmt(sps, ',.0f')} | {_fmt((r.get('mb_per_s') or 0) / 1e3, '.2f')} "
                f"| {_fmt(ratio, '.2f')}x | {_fmt((r.get('ttfb') or 0) * 1e3, '.0f')} "
                f"| {_fmt(r.get('rss_mib'), '.0f')} | {_fmt(r.get('tree_pss_mib'), '.0f')} "
                f"| {'yes' if r.get('exactly_once') else 'NO'} |"
            )
        res = rows.get("resume at 50 %")
        if res:
            lines.append("")
            lines.append(
                "Time to first batch after resuming at 50 % (fresh Dataset, load_state_dict, "
                f"first batch; median of 5 x {res['reps']} rounds): "
                f"to_torch in process {_fmt(res.get('torch_w0_ms'), '.1f')} ms, "
                f"feed {_fmt(res.get('feed_ms'), '.1f')} ms, "
                f"atdata.torch.loader with 2 workers {_fmt(res.get('loader_w2_ms'), '.1f')} ms "
                f"(worker start-up included); the rest of the epoch exactly the second half: "
                f"{'yes' if all(res.get(f'{k}_exact') for k in ('torch_w0', 'loader_w2', 'feed')) else 'NO'}."
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.b7_torch", description=__doc__)
    p.add_argument("--quick", action="store_true", help="B3: 4,000 samples, B1: 100,000")
    p.add_argument("--scenarios", default="B3,B1")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workers", default="0,1,2", help="DataLoader worker counts")
    p.add_argument("--threads", default="1,2", help="feed reader thread counts")
    p.add_argument("--no-atdata07", action="store_true")
    p.add_argument("--keep-data", action="store_true")
    p.add_argument("--size", action="append", metavar="ID=N", help="samples, e.g. B1=200000")
    p.add_argument("--only", help="comma-separated substrings: run only the rows matching one")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",")]
    args.threads = [int(t) for t in args.threads.split(",")]
    args.only = [o for o in (args.only or "").split(",") if o]
    args.size = {k.upper(): int(v) for k, _, v in (i.partition("=") for i in args.size or [])}
    DATA.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or DATA / f"b7-{stamp}{'-quick' if args.quick else ''}.json"
    log = out.with_suffix(".log")
    run = _runners(not args.no_atdata07)
    results: dict[str, Any] = {"meta": environment(run) | {"quick": args.quick}, "scenarios": {}}
    results["meta"]["repeat"] = args.repeat
    results["meta"]["torch"] = _torch_version()
    for sid in [s.strip().upper() for s in args.scenarios.split(",") if s.strip()]:
        results["scenarios"][sid] = run_scenario(sid, args, run, log)
        out.write_text(json.dumps(results, indent=1))
    md = render(results)
    out.with_suffix(".md").write_text(md)
    print("\n" + md + f"\nresults: {out}")
    bad = [
        f"{sid} {k}"
        for sid, sc in results["scenarios"].items()
        for k, r in sc["rows"].items()
        if not r["exactly_once"]
    ]
    if bad:
        print("EXACTLY-ONCE CHECK FAILED: " + ", ".join(bad))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
