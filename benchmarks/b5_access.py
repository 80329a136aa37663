"""B5: access patterns on B3 data: random ``get(key)`` latency and time to first batch on resume.

    uv run python -m benchmarks.b5_access [--samples 20000] [--per-shard 1000] [--gets 2000]

Writes B3-shaped shards (``image: uint8[224,224,3], label: int``) with our writer, then measures,
warm page cache, in this process: ``ds.get(key)`` p50/p99 over random keys (after the one-off
key table is built, whose cost is reported separately), ``ds[i]`` likewise, and the time to the
first batch of 64 when resuming an ordered epoch at 25/50/75 % (``ordered(start=N)``) and a
shuffled one at 50 % (``shuffled(start=N)``, which skips members without decoding them), each
from a freshly constructed ``Dataset`` (offset indexes loaded as part of the timing). atdata 0.7
has no keyed access and no resume, so there is no comparator row. Results go to
``benchmarks/.data/b5.json``.
"""

import argparse
import json
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np

import atdata
from atdata import NDArray

DATA = Path(__file__).parent / ".data"
BATCH = 64


@atdata.packable
class Image:
    image: Annotated[NDArray[np.uint8], atdata.Shape(224, 224, 3)]
    label: int


def _write(root: Path, samples: int, per_shard: int) -> str:
    base = np.random.default_rng(5).integers(0, 255, (224, 224, 3), dtype=np.uint8)

    def gen() -> Any:
        for i in range(samples):
            img = base.copy()
            img.reshape(-1)[:8] = np.frombuffer(i.to_bytes(8, "little"), np.uint8)
            yield Image(img, i)

    atdata.write_samples(gen(), str(root / "b5-%06d.tar"), maxcount=per_shard)
    return str(root / "b5-*.tar")


def _percentiles(ns: list[int]) -> dict[str, float]:
    ordered = sorted(ns)
    return {
        "p50_us": ordered[len(ordered) // 2] / 1e3,
        "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e3,
    }


def _ttfb(make: Any, reps: int = 5) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        batch = next(iter(make()))
        times.append(time.perf_counter() - t0)
        assert len(batch) == BATCH
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--per-shard", type=int, default=1_000)
    parser.add_argument("--gets", type=int, default=2_000)
    args = parser.parse_args(argv)
    root = DATA / "B5"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    try:
        pattern = _write(root, args.samples, args.per_shard)
        for f in root.glob("*.tar"):  # warm the page cache
            f.read_bytes()
        n = args.samples
        ds = atdata.Dataset[Image](pattern)
        t0 = time.perf_counter()
        first = ds.get(f"{n // 2:08d}")
        table_ms = (time.perf_counter() - t0) * 1e3
        assert first.label == n // 2
        rng = random.Random(0)
        keys = [rng.randrange(n) for _ in range(args.gets)]
        get_ns = []
        for k in keys:
            t = time.perf_counter_ns()
            s = ds.get(f"{k:08d}")
            get_ns.append(time.perf_counter_ns() - t)
            assert s.label == k
        index_ns = []
        for k in keys:
            t = time.perf_counter_ns()
            s = ds[k]
            index_ns.append(time.perf_counter_ns() - t)
            assert s.label == k
        resume = {
            f"ordered start={pct}%": _ttfb(
                lambda pct=pct: atdata.Dataset[Image](pattern).ordered(
                    batch_size=BATCH, start=n * pct // 100
                )
            )
            for pct in (0, 25, 50, 75)
        }
        resume["shuffled start=50%"] = _ttfb(
            lambda: atdata.Dataset[Image](pattern).shuffled(
                seed=0, batch_size=BATCH, buffer_size=1_000, start=n // 2
            )
        )
        results = {
            "samples": n,
            "shards": -(-n // args.per_shard),
            "key_table_build_ms": table_ms,
            "get_key": _percentiles(get_ns),
            "get_index": _percentiles(index_ns),
            "resume_first_batch_ms": resume,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    (DATA / "b5.json").write_text(json.dumps(results, indent=2))
    print(f"B5 on {results['samples']:,} B3 samples in {results['shards']} shards (warm cache)\n")
    print("| measure | value |\n|---|---:|")
    print(
        f"| `ds.get(key)` p50 / p99 | {results['get_key']['p50_us']:.1f} / {results['get_key']['p99_us']:.1f} µs |"
    )
    print(
        f"| `ds[i]` p50 / p99 | {results['get_index']['p50_us']:.1f} / {results['get_index']['p99_us']:.1f} µs |"
    )
    print(f"| first `get` (builds the key table from the offset indexes) | {table_ms:.1f} ms |")
    for name, ms in resume.items():
        print(f"| first batch of {BATCH}, {name} (fresh Dataset) | {ms:.1f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
