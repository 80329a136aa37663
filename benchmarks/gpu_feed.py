"""B7 on the GPU machine: B3 images delivered INTO DEVICE MEMORY, GB/s and samples/s.

    python -m benchmarks.gpu_feed [--samples 16000] [--repeat 2] [--passes 3]
        [--device auto|cuda|cpu] [--budget 270] [--out FILE.json]

Writes ``--samples`` B3 samples (``image: uint8[224,224,3], label: int``, 147 KiB each) once with
our writer (``durable=False``), one shard per process in parallel, into a temp dir; our shards are
tar files, which webdataset reads as they are (``<key>.msgpack`` members), so the comparator
reads the same bytes. Page cache warm, then every round runs each configuration once, each in
its own child process (``benchmarks.gpu_feed_child``), rounds interleaved:

- ours ``atdata.torch.feed(ds, device=dev, processes=k)`` (reader processes collating into one
  shared buffer, registered with CUDA once; one feed for all of the child's passes);
- ours ``atdata.torch.feed(ds, device=dev, threads=k)``;
- ours ``atdata.torch.loader(ds.to_torch(64), num_workers=w, pin_memory=True)`` then
  ``.to(dev, non_blocking=True)``;
- webdataset + ``DataLoader(num_workers=w, pin_memory=True)`` (B7's comparator);
- EXPERIMENTAL ``shm``: the bench-only prototype of the processes feed (see
  ``benchmarks/gpu_shm_feed.py``), kept at one size for an A/B against the library path;
- ceilings: page-cache read of the shard bytes by 1 and 8 processes; pinned and pageable
  host-to-device copies of one 9.6 MB batch.

Each child makes ``--passes`` passes; pass 0 (start-up included) is reported apart, the others
are the steady state, summarised by their median over all rounds. Every pass's labels are
checked for exactly-once delivery. ``--budget``: wall seconds for everything (writing included);
configurations that would not fit are skipped (and said so). A configuration that fails is
recorded with its error and the others go on. Prints a markdown table, writes JSON to ``--out``.
"""

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .measure import warm_cache
from .scenarios import SCENARIOS, _chunk, expected_digest

ROOT = Path(__file__).resolve().parent.parent
SC = SCENARIOS["B3"]
BATCH = 64
SHARDS = 16
ROW = 224 * 224 * 3
_FIRST_GUESS_S = 20.0  # a configuration's wall time before it has run once
_RUNNING: list[int] = []  # the child running now (its own process group)


def _terminated(signum: int, frame: Any) -> None:
    """SIGTERM (an outer ``timeout``): take the running child's whole group down with us."""
    for pid in _RUNNING:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    raise SystemExit(128 + signum)


def _write_shard(args: tuple[str, int, int, int]) -> int:
    """Shard ``i`` with samples [lo, hi) (keys: the labels, unique across shards)."""
    directory, i, lo, hi = args
    import atdata

    from .drivers.typed import sample_type

    T = sample_type(SC)

    def samples() -> Any:
        step = 55  # ~8 MB of images per generated chunk
        for start in range(lo, hi, step):
            cols = _chunk(SC, start, min(hi, start + step))
            for img, label in zip(cols["image"], cols["label"], strict=True):
                yield T(image=img, label=label)

    path = str(Path(directory) / f"data-{i:06d}.tar")
    atdata.write_samples(samples(), path, maxcount=hi - lo + 1, key_field="label", durable=False)
    return hi - lo


def write_data(directory: str, n: int, shards: int, procs: int) -> float:
    t0 = time.perf_counter()
    per = -(-n // shards)
    jobs = [(directory, i, i * per, min(n, (i + 1) * per)) for i in range(shards) if i * per < n]
    with ProcessPoolExecutor(max_workers=procs) as pool:
        written = sum(pool.map(_write_shard, jobs))
    assert written == n, (written, n)
    return time.perf_counter() - t0


def plan(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    """(row name, kind, parameter), most important first (the budget trims from the end)."""
    rows = [("ceiling: H2D copy of a 9.6 MB batch, pinned", "h2d", 1)]
    rows += [("ceiling: H2D copy of a 9.6 MB batch, pageable", "h2d", 0)]
    rows += [(f"ours feed processes={k}", "procs", k) for k in args.processes]
    rows += [(f"ours feed threads={k}", "feed", k) for k in args.threads]
    rows += [(f"ours loader w={w} + pin_memory", "loader", w) for w in args.workers]
    rows += [(f"EXPERIMENTAL shm+registered w={w}", "shm", w) for w in args.shm_workers]
    rows += [(f"webdataset + DataLoader w={w} + pin_memory", "wds", w) for w in args.workers]
    rows += [(f"ceiling: page-cache read, {k} proc", "read", k) for k in args.read_procs]
    return rows


def run_child(spec: dict[str, Any], timeout: float, log: Path) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = Path(tmp.name)
    spec = dict(spec, out=str(out))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-u", "-m", "benchmarks.gpu_feed_child", json.dumps(spec)]
    try:
        with tempfile.TemporaryFile() as own:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=own, stderr=own, start_new_session=True
            )
            _RUNNING[:] = [proc.pid]
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:  # the child and its workers, all of them
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                own.write(f"\nkilled after {timeout:.0f} s (timeout)\n".encode())
            finally:
                _RUNNING.clear()
            own.seek(0)
            text = own.read().decode(errors="replace")
        with open(log, "a") as logf:
            logf.write(f"\n$ {spec['kind']} {spec['param']} (exit {proc.returncode})\n{text}")
        if proc.returncode != 0:
            raise RuntimeError(f"exit {proc.returncode}: {text[-1500:]}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result
    finally:
        out.unlink(missing_ok=True)


def summarise(name: str, kind: str, runs: list[dict[str, Any]], expected: Any) -> dict[str, Any]:
    steady = [p for r in runs for p in r.get("passes", [])[1:]] or [
        p for r in runs for p in r.get("passes", [])
    ]
    first = [r["passes"][0]["seconds"] for r in runs if r.get("passes")]
    all_passes = [p for r in runs for p in r.get("passes", [])]
    checked = [p["ids"] == expected for p in all_passes if p.get("ids") is not None]
    out: dict[str, Any] = {
        "kind": kind,
        "runs": len([r for r in runs if "passes" in r]),
        "errors": [r["error"] for r in runs if "error" in r],
        "skipped": [r["skipped"] for r in runs if "skipped" in r],
        "exactly_once": (all(checked) if checked else None),
        "passes_checked": len(checked),
        "first_pass_s": statistics.median(first) if first else None,
        "steady_s_all": [p["seconds"] for p in steady],
        "registered": any(r.get("registered") for r in runs),
    }
    if steady:
        sec = statistics.median(p["seconds"] for p in steady)
        nbytes = steady[0]["bytes"]
        out["seconds"] = sec
        out["gb_per_s"] = nbytes / sec / 1e9
        count = steady[0]["ids"]["count"] if steady[0].get("ids") else None
        out["samples_per_s"] = count / sec if count else None
    return out


def render(results: dict[str, Any]) -> str:
    m = results["meta"]
    lines = [
        f"B7 into device memory: {m['samples']:,} B3 samples ({m['data_bytes'] / 1e9:.2f} GB of "
        f"images), {m['shards']} shards, batch {BATCH}; device {m.get('device_name')}, "
        f"{m['cpus']} CPUs, torch {m.get('torch')}, Python {m['python']}; write "
        f"{m['write_s']:.1f} s; {m['rounds']} round(s) x {m['passes']} passes (first apart)",
        "",
        "| config | GB/s | samples/s | first pass s | steady passes | exactly once | note |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for name, r in results["rows"].items():
        gbs = f"{r['gb_per_s']:.2f}" if r.get("gb_per_s") else "-"
        sps = f"{r['samples_per_s']:,.0f}" if r.get("samples_per_s") else "-"
        fp = f"{r['first_pass_s']:.2f}" if r.get("first_pass_s") else "-"
        eo = {True: "yes", False: "NO", None: "n/a"}[r["exactly_once"]]
        note = "; ".join(
            [f"error: {e.strip().splitlines()[-1][:100]}" for e in r["errors"][:1]]
            + r["skipped"][:1]
        )
        lines.append(
            f"| {name} | {gbs} | {sps} | {fp} | {len(r['steady_s_all'])} | {eo} | {note} |"
        )
    return "\n".join(lines)


def _torch_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return None


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    start = time.perf_counter()
    signal.signal(signal.SIGTERM, _terminated)
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_feed", description=__doc__)
    p.add_argument("--samples", type=int, default=16_000)
    p.add_argument("--shards", type=int, default=SHARDS)
    p.add_argument("--repeat", type=int, default=2, help="rounds (interleaved)")
    p.add_argument("--passes", type=int, default=3, help="passes per child; the first apart")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    p.add_argument("--budget", type=float, default=270.0, help="wall seconds for everything")
    p.add_argument("--threads", type=_ints, default=[2], help="feed threads")
    p.add_argument("--workers", type=_ints, default=[8], help="DataLoader workers")
    p.add_argument("--processes", type=_ints, default=[4, 8, 14], help="feed reader processes")
    p.add_argument("--shm-workers", type=_ints, default=[14], help="experimental readers")
    p.add_argument("--read-procs", type=_ints, default=[1, 8], help="page-cache read procs")
    p.add_argument("--prefetch", type=int, default=4, help="DataLoader prefetch_factor")
    p.add_argument("--h2d-reps", type=int, default=200, help="copies per H2D pass")
    p.add_argument("--only", default="", help="comma-separated kinds to run (default all)")
    p.add_argument("--data-dir", help="where the shards go (default: a fresh temp dir)")
    p.add_argument("--out", type=Path, default=Path("gpu_feed.json"))
    args = p.parse_args(argv)
    cpus = os.cpu_count() or 1
    base = Path(args.data_dir or tempfile.mkdtemp(prefix="atdata-gpufeed-"))
    base.mkdir(parents=True, exist_ok=True)
    log = args.out.with_suffix(".log")
    log.write_text("")
    meta: dict[str, Any] = {
        "samples": args.samples,
        "shards": args.shards,
        "batch": BATCH,
        "data_bytes": args.samples * ROW,
        "cpus": cpus,
        "python": platform.python_version(),
        "torch": _torch_version(),
        "device_arg": args.device,
        "repeat": args.repeat,
        "passes": args.passes,
        "budget_s": args.budget,
        "rounds": 0,
    }
    results: dict[str, Any] = {"meta": meta, "rows": {}}
    try:
        print(f"writing {args.samples:,} B3 samples in {args.shards} shards to {base} ...")
        meta["write_s"] = write_data(str(base), args.samples, args.shards, min(cpus, args.shards))
        files = [str(base / f"data-{i:06d}.tar") for i in range(args.shards)]
        meta["shard_bytes"] = sum(Path(f).stat().st_size for f in files)
        print(f"written in {meta['write_s']:.1f} s ({meta['shard_bytes'] / 1e9:.2f} GB)")
        args.out.write_text(json.dumps(results, indent=1))  # something there even if killed
        expected = expected_digest(args.samples)
        only = {k for k in args.only.split(",") if k}
        rows = [r for r in plan(args) if not only or r[1] in only]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in rows}
        walls: dict[str, float] = {}
        common = {
            "dir": str(base),
            "shards": args.shards,
            "batch": BATCH,
            "device": args.device,
            "passes": args.passes,
            "prefetch": args.prefetch,
            "reps": args.h2d_reps,
        }
        for rnd in range(args.repeat):
            warm_cache(files)
            ran = 0
            for name, kind, param in rows:
                left = args.budget - (time.perf_counter() - start)
                guess = walls.get(name, _FIRST_GUESS_S)
                if guess > left - 5:
                    runs[name].append({"skipped": f"budget (round {rnd + 1})"})
                    continue
                t0 = time.perf_counter()
                try:
                    res = run_child(dict(common, kind=kind, param=param), max(left - 5, 10), log)
                except Exception as exc:  # recorded; the other configurations go on
                    res = {"error": f"{type(exc).__name__}: {exc}"}
                walls[name] = time.perf_counter() - t0
                ran += 1
                runs[name].append(res)
                results["rows"][name] = summarise(name, kind, runs[name], expected)
                args.out.write_text(json.dumps(results, indent=1))
                if res.get("device_name") and not meta.get("device_name"):
                    meta["device_name"] = res["device_name"]
                if "error" in res:
                    print(f"  round {rnd + 1} {name:<46} ERROR {res['error'][:300]}", flush=True)
                    continue
                gbs = [f"{q['bytes'] / q['seconds'] / 1e9:.2f}" for q in res["passes"]]
                bad = [q for q in res["passes"] if q["ids"] is not None and q["ids"] != expected]
                print(
                    f"  round {rnd + 1} {name:<46} GB/s per pass {', '.join(gbs)}"
                    f"{'  !! NOT EXACTLY ONCE' if bad else ''}  ({walls[name]:.1f} s)",
                    flush=True,
                )
            meta["rounds"] = rnd + 1 if ran else meta["rounds"]
            for name, kind, _ in rows:
                results["rows"][name] = summarise(name, kind, runs[name], expected)
            args.out.write_text(json.dumps(results, indent=1))
    finally:
        if not args.data_dir:
            shutil.rmtree(base, ignore_errors=True)
    meta["total_s"] = time.perf_counter() - start
    md = render(results)
    results["markdown"] = md
    args.out.write_text(json.dumps(results, indent=1))
    print("\n" + md + f"\n\ntotal {meta['total_s']:.0f} s; results: {args.out}", flush=True)
    bad_rows = [k for k, r in results["rows"].items() if r["exactly_once"] is False]
    if bad_rows:
        print("EXACTLY-ONCE CHECK FAILED: " + ", ".join(bad_rows))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
