"""B1 writes, A/B between two checkouts: CPU µs per sample of ``write_samples`` in one run.

``python -m benchmarks.b1_write_cpu --against /work/main/src [--n 100000] [--repeat 5]``

Each repetition writes the same ``n`` B1 samples (generated beforehand, not timed) into 1,000-sample
shards with this checkout's atdata and with the one under ``--against`` (its ``src`` folder), in
alternating subprocesses, and prints the median wall time and process CPU time (all threads) per
sample of each, their ratio, and a digest of every file written (shards and sidecars): the two
must write the same bytes. CPU time is the figure to compare on a shared machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OURS = HERE.parent / "src"

_CHILD = r"""
import hashlib, json, os, shutil, sys, tempfile, time
import atdata
from benchmarks.drivers.typed import sample_type
from benchmarks.scenarios import SCENARIOS, iter_samples
n, durable = int(sys.argv[1]), sys.argv[2] == "1"
sc = SCENARIOS["B1"]
samples = list(iter_samples(sc, n, sample_type(sc)))
out = tempfile.mkdtemp(prefix="b1w-")
try:
    t0, c0 = time.perf_counter(), time.process_time()
    atdata.write_samples(samples, out + "/b1-%06d.tar", maxcount=1000, durable=durable)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    h = hashlib.sha256()
    for name in sorted(os.listdir(out)):
        h.update(name.encode())
        with open(os.path.join(out, name), "rb") as f:
            h.update(f.read())
finally:
    shutil.rmtree(out)
print(json.dumps({"wall": wall, "cpu": cpu, "files": h.hexdigest()[:16], "atdata": atdata.__file__}))
"""


def _run(src: Path, n: int, durable: bool) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(HERE.parent)]))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(n), "1" if durable else "0"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--against", required=True, help="the other checkout's src folder")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--no-fsync", action="store_true", help="durable=False for both")
    args = p.parse_args()
    runs: dict[str, list[dict[str, object]]] = {"this": [], "against": []}
    for _ in range(args.repeat):
        runs["this"].append(_run(OURS, args.n, not args.no_fsync))
        runs["against"].append(_run(Path(args.against), args.n, not args.no_fsync))
    med: dict[str, tuple[float, float]] = {}
    for label, results in runs.items():
        wall = statistics.median(float(str(r["wall"])) for r in results)
        cpu = statistics.median(float(str(r["cpu"])) for r in results)
        med[label] = (wall, cpu)
        digests = sorted({str(r["files"]) for r in results})
        print(
            f"{label:8s} {results[0]['atdata']}: wall {wall:.3f} s ({args.n / wall:,.0f}/s), "
            f"CPU {cpu / args.n * 1e6:.2f} µs/sample, files {','.join(digests)}"
        )
    print(
        f"ratio against/this: CPU {med['against'][1] / med['this'][1]:.2f}x, "
        f"wall {med['against'][0] / med['this'][0]:.2f}x (median of {args.repeat}, alternating)"
    )


if __name__ == "__main__":
    main()
