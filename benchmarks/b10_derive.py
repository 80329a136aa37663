"""B10: derived datasets: ``Index.derive`` in-process, on a process pool and on Ray (when
``atdata[ray]`` is installed) beside the loop a user writes today, and an
incremental rerun after the source gained 10 % new shards.

    uv run python -m benchmarks.b10_derive [--images 1000] [--tokens 10000] [--shards 20] [--reps 3]

Workloads, on scenario data (benchmarks/scenarios.py):

- thumbnails: B3 images (224x224x3 uint8 + label) -> 64x64 thumbnails (Pillow, bilinear);
- token features: B2 token blocks (2048 int32) -> a 256-bin histogram of token ids and the
  number of distinct tokens.

Methods, each writing the same output: ``loop`` = ``atdata.write_samples(ds.map(fn), ...)`` over
the source shards (one process, what a user writes today); ``inprocess`` =
``index.derive(..., executor=InProcessExecutor())``; ``pool-N`` = ``ProcessPoolExecutor(N)``
(N = 1 .. cores; forkserver with atdata preloaded; the pool's start-up is included), and
``pool-N-spawn`` with N = cores and the spawn start method; ``ray-N`` = ``RayExecutor`` on a local Ray with N =
cores CPUs (``ray.init`` once per run, before the timings; its start-up is printed apart; each
derive still pays Ray's task scheduling and worker start). Repetitions are interleaved (the methods rotate
each round) and each figure is the median; every derive writes a new name, so nothing is reused.

Incremental: the source gains 10 % new shards (its first shards keep their bytes); ``full`` =
derive of the new version into a fresh name, ``incremental`` = derive of the new version into
the name that holds the derive of the old version (reused shards copied, new ones computed).
Results: a table on stdout and ``benchmarks/.data/b10.json``, with the load average before and
after (the machine may be shared).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from numpy.typing import NDArray

import atdata
from atdata.derive import InProcessExecutor, ProcessPoolExecutor, executor_named
from atdata.index import Index

from .scenarios import SCENARIOS, iter_samples

DATA = Path(__file__).resolve().parent / ".data"


@atdata.packable
class Image3:
    image: Annotated[NDArray[np.uint8], atdata.Shape(224, 224, 3)]
    label: int


@atdata.packable
class Thumb:
    image: Annotated[NDArray[np.uint8], atdata.Shape(64, 64, 3)]
    label: int


@atdata.packable
class Tokens:
    tokens: Annotated[NDArray[np.int32], atdata.Shape(2048)]


@atdata.packable
class TokenFeatures:
    first: int
    distinct: int
    histogram: Annotated[NDArray[np.int32], atdata.Shape(256)]


def thumbnail(s: Image3) -> Thumb:
    from PIL import Image

    small = Image.fromarray(np.asarray(s.image)).resize((64, 64), Image.Resampling.BILINEAR)
    return Thumb(image=np.asarray(small), label=s.label)


def token_features(s: Tokens) -> TokenFeatures:
    tokens = np.asarray(s.tokens)
    hist = np.bincount(tokens % 256, minlength=256).astype(np.int32)
    return TokenFeatures(first=int(tokens[0]), distinct=len(np.unique(tokens)), histogram=hist)


WORKLOADS: dict[str, tuple[str, type, Callable[[Any], Any]]] = {
    "thumbnails": ("B3", Image3, thumbnail),
    "tokens": ("B2", Tokens, token_features),
}


def write_source(root: Path, workload: str, samples: int, shards: int) -> list[str]:
    """The source shards (plus 10 % more at the end, for the incremental run)."""
    scenario_id, kind, _ = WORKLOADS[workload]
    per = max(1, samples // shards)
    extra = max(1, shards // 10)
    total = per * (shards + extra)
    pattern = str(root / f"{workload}-src" / f"{workload}-%06d.tar")
    os.makedirs(os.path.dirname(pattern), exist_ok=True)
    written = atdata.write_samples(
        iter_samples(SCENARIOS[scenario_id], total, kind), pattern, maxcount=per
    )
    return [s.url for s in written.shard_infos]


def executors(cores: int) -> dict[str, Any]:
    made: dict[str, Any] = {"inprocess": InProcessExecutor()}
    for n in range(1, cores + 1):
        made[f"pool-{n}"] = ProcessPoolExecutor(n)
    made[f"pool-{cores}-spawn"] = ProcessPoolExecutor(cores, mp_context="spawn")
    try:
        import ray
    except ImportError:
        return made
    if not ray.is_initialized():  # a local Ray with every core; its start-up is not timed
        t0 = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
        RAY_STARTUP.append(time.perf_counter() - t0)
    made[f"ray-{cores}"] = executor_named("ray", cores)
    return made


#: seconds ``ray.init`` took (a local Ray started once per run, outside the timings)
RAY_STARTUP: list[float] = []


def run_once(index: Index, method: str, ex: Any, workload: str, ref: str, name: str) -> float:
    _, kind, fn = WORKLOADS[workload]
    t0 = time.perf_counter()
    if method == "loop":  # what a user writes today
        ds = index.load(ref, kind)
        out = Path(os.environ["ATDATA_HOME"]).parent / "loop" / name
        out.mkdir(parents=True, exist_ok=True)
        per = index.get(ref).shards[0].count
        atdata.write_samples(ds.map(fn), str(out / "part-%06d.tar"), maxcount=per)
    else:
        index.derive(ref, fn, name, executor=ex)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1000, help="B3 samples")
    ap.add_argument("--tokens", type=int, default=10000, help="B2 samples")
    ap.add_argument("--shards", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workloads", default="thumbnails,tokens")
    args = ap.parse_args()
    # Ray workers import this module by reference: an absolute path on PYTHONPATH; no uv
    # runtime_env (Ray would ship the tree and start each worker with `uv run`); no token auth
    here = str(Path(__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    results: dict[str, Any] = {"cores": cores, "load_before": load_before, "workloads": {}}
    with tempfile.TemporaryDirectory(prefix="b10-") as tmp:
        os.environ["ATDATA_HOME"] = str(Path(tmp) / "home")
        index = Index(home=Path(tmp) / "home")
        for workload in args.workloads.split(","):
            samples = args.images if workload == "thumbnails" else args.tokens
            urls = write_source(Path(tmp), workload, samples, args.shards)
            kind = WORKLOADS[workload][1]
            old = index.insert(urls[: args.shards], f"{workload}-src", sample_type=kind)
            new = index.insert(urls, f"{workload}-src", sample_type=kind)
            methods = {"loop": None, **executors(cores)}
            times: dict[str, list[float]] = {m: [] for m in methods}
            for rep in range(args.reps):
                order = list(methods)
                order = order[rep % len(order) :] + order[: rep % len(order)]
                for m in order:
                    name = f"{workload}-{m}-{rep}"
                    times[m].append(run_once(index, m, methods[m], workload, old.ref, name))
            inc: dict[str, list[float]] = {"full": [], "incremental": []}
            for rep in range(args.reps):
                base = f"{workload}-inc-{rep}"
                index.derive(old.ref, WORKLOADS[workload][2], base)  # the previous derive
                pair = [("full", f"{workload}-full-{rep}"), ("incremental", base)]
                for what, name in pair if rep % 2 == 0 else pair[::-1]:
                    inc[what].append(run_once(index, what, None, workload, new.ref, name))
            n = old.count
            row = {
                m: {"seconds": statistics.median(t), "samples_per_s": n / statistics.median(t)}
                for m, t in times.items()
            }
            full, part = statistics.median(inc["full"]), statistics.median(inc["incremental"])
            results["workloads"][workload] = {
                "samples": n,
                "shards": args.shards,
                "methods": row,
                "incremental": {
                    "full_s": full,
                    "incremental_s": part,
                    "fraction": part / full,
                    "new_shards": len(urls) - args.shards,
                },
            }
            print(f"\n{workload}: {n} samples in {args.shards} shards (median of {args.reps})")
            loop = row["loop"]["samples_per_s"]
            for m, r in row.items():
                print(
                    f"  {m:<10} {r['samples_per_s']:>10.1f} samples/s"
                    f"  {r['samples_per_s'] / loop:>5.2f}x loop"
                )
            print(
                f"  incremental rerun (+{len(urls) - args.shards} shards): {part:.2f}s vs full "
                f"{full:.2f}s = {part / full:.1%}"
            )
        index.close()
    results["load_after"] = os.getloadavg()
    results["ray_startup_s"] = RAY_STARTUP[0] if RAY_STARTUP else None
    if RAY_STARTUP:
        print(f"\nray.init (local, {cores} CPUs, not in the timings): {RAY_STARTUP[0]:.1f}s")
    print(f"\nload average before {load_before}, after {results['load_after']}; {cores} cores")
    DATA.mkdir(exist_ok=True)
    (DATA / "b10.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    # run as the importable module, so Ray's workers (and the pool's) find the transforms and
    # sample types by reference (they cannot import __main__)
    import importlib

    sys.exit(importlib.import_module("benchmarks.b10_derive").main())
