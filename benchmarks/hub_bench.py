"""Streaming B3 from a loopback Hub server (issue 14): ours by ``hf://``, ours over plain HTTP, and
Hugging Face ``datasets.load_dataset(..., streaming=True)`` on the same files.

    uv run python -m benchmarks.hub_bench [--n 1000] [--shards 4] [--rounds 3]

1. B3-like samples (``image: uint8[224,224,3], label: int``) are written once into a fresh
   index and published with ``index.publish(name, to="hf://datasets/bench/b3")``.
2. A server process (this module with ``--serve``) serves, on 127.0.0.1, the Hub-compatible test
   server (``tests/hub_server.py``) and the HTTP file server of the test suite
   (``tests/http_server.py``) over the index's shard directory: the same bytes both ways.
   The repository is published to that server process over HTTP by the real client.
3. Each round runs, each in its own child process and in rotating order (drift hits all alike):
   - ``ours-hf``: ``atdata.load_dataset("hf://datasets/bench/b3", split="train")``, ordered
     batches of 64 (shards checked against the card's sha256);
   - ``ours-http``: ``atdata.Dataset(<http brace URL>, B3)``, ordered batches of 64 (no checksums);
   - ``hf-datasets``: ``datasets.load_dataset("bench/b3", split="train", streaming=True)`` with
     ``HF_ENDPOINT`` at the server, ``.iter(batch_size=64)``: the WebDataset builder hands the
     members' bytes (it does not decode our msgpack samples into arrays: less work than ours).
   Every child times from before its first import to its first batch (time to first batch) and
   to its last; MB/s is the shard bytes over that whole time. Every reader must deliver n
   samples.
4. Medians per reader and the ratios ours-hf / ours-http and ours-hf / hf-datasets are printed
   as a markdown table.

Nothing leaves loopback: the servers bind 127.0.0.1 and every process here refuses non-loopback
connections (``atmosphere_bench.loopback_only``); ``HF_HUB_OFFLINE`` stays off only because the
endpoint is loopback.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
READERS = ("ours-hf", "ours-http", "hf-datasets")

_CHILD = {
    "ours-hf": """
import atdata
ds = atdata.load_dataset("hf://datasets/bench/b3", split="train")
batches = iter(ds.ordered(batch_size=64))
""",
    "ours-http": """
import atdata, numpy as np
@atdata.packable
class B3:
    image: np.ndarray
    label: int
ds = atdata.Dataset(URLS, B3)
batches = iter(ds.ordered(batch_size=64))
""",
    "hf-datasets": """
import datasets
datasets.disable_progress_bars()
ds = datasets.load_dataset("bench/b3", split="train", streaming=True)
batches = iter(ds.iter(batch_size=64))
""",
}

_TIMED = """
import time; T0 = time.perf_counter()
import sys, json
sys.path.insert(0, ROOT)
from benchmarks.atmosphere_bench import loopback_only
loopback_only()
{body}
first = next(batches)
T1 = time.perf_counter()
def size(b):
    if isinstance(b, dict):
        return len(next(iter(b.values())))
    return len(b)
n = size(first)
for b in batches:
    n += size(b)
T2 = time.perf_counter()
print(json.dumps({{"first": T1 - T0, "total": T2 - T0, "n": n}}))
"""


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(
        f"_hub_bench_{name}", ROOT / "tests" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def serve(shard_dir: str, hub_root: str) -> None:
    """Start both servers, print their endpoints as one JSON line, serve until stdin closes."""
    from benchmarks.atmosphere_bench import loopback_only

    loopback_only()
    hub = _load("hub_server").HubServer(hub_root).start()
    files = _load("http_server").FileServer(shard_dir).start()
    print(
        json.dumps({"hub": hub.endpoint, "http": files.url + "/", "token": hub.token}), flush=True
    )
    sys.stdin.read()


def _write_and_publish(n: int, shards: int, home: str) -> tuple[list[str], int]:
    import numpy as np

    import atdata

    @atdata.packable
    class B3:
        image: np.ndarray
        label: int

    rng = np.random.default_rng(0)
    rows = (B3(image=rng.integers(0, 255, (224, 224, 3), np.uint8), label=i) for i in range(n))
    with atdata.Index() as index:
        index.write(rows, name="b3", maxcount=-(-n // shards))
        urls = [s.url for s in index.get("b3").shards]
        index.publish("b3", to="hf://datasets/bench/b3")
    del home
    return urls, sum(os.path.getsize(u) for u in urls)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", nargs=2, metavar=("SHARD_DIR", "HUB_ROOT"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    from benchmarks.atmosphere_bench import loopback_only

    loopback_only()
    work = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATDATA_", "HF_"))}
    env |= {
        "ATDATA_HOME": str(work / "home"),
        "HF_HOME": str(work / "hf-home"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "NO_PROXY": "127.0.0.1",
    }
    store = work / "home"
    store.mkdir(parents=True)
    # the index's shard directory is known only after writing; serve the whole home
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.hub_bench", "--serve", str(store), str(work / "hub")],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert server.stdout is not None
    ends = json.loads(server.stdout.readline())
    env |= {"HF_ENDPOINT": ends["hub"], "HF_TOKEN": ends["token"]}
    os.environ.update(env)
    urls, total_bytes = _write_and_publish(args.n, args.shards, str(store))
    http_urls = [ends["http"] + os.path.relpath(u, store) for u in urls]
    results: dict[str, list[dict[str, float]]] = {r: [] for r in READERS}
    try:
        for rnd in range(args.rounds):
            order = READERS[rnd % 3 :] + READERS[: rnd % 3]
            for reader in order:
                body = _CHILD[reader].replace("URLS", repr(http_urls))
                code = _TIMED.replace("ROOT", repr(str(ROOT))).format(body=body)
                out = subprocess.run(
                    [sys.executable, "-c", code],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=900,
                    check=False,
                )
                if out.returncode != 0:
                    raise SystemExit(f"{reader} failed:\n{out.stderr[-3000:]}")
                got = json.loads(out.stdout.strip().splitlines()[-1])
                if got["n"] != args.n:
                    raise SystemExit(f"{reader} delivered {got['n']} samples, not {args.n}")
                results[reader].append(got)
                print(f"round {rnd} {reader}: {got}", file=sys.stderr)
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=30)
    _report(results, total_bytes, args)


def _report(results: dict[str, list[dict[str, float]]], total: int, args: Any) -> None:
    mb = total / 1e6
    med = {
        r: {k: statistics.median(x[k] for x in v) for k in ("first", "total")}
        for r, v in results.items()
    }
    print(
        f"\nB3-like: {args.n} samples in {args.shards} shards, {mb:,.0f} MB; medians of {args.rounds} rounds; "
        f"load average {os.getloadavg()[0]:.1f} at the end\n"
    )
    print("| reader | MB/s | MB/s after the first batch | time to first batch (s) | total (s) |")
    print("|---|---:|---:|---:|---:|")
    rest = mb * (args.n - 64) / args.n
    for r in READERS:
        m = med[r]
        steady = rest / max(m["total"] - m["first"], 1e-9)
        print(
            f"| {r} | {mb / m['total']:,.0f} | {steady:,.0f} | {m['first']:.2f} | {m['total']:.2f} |"
        )
    hf, http, ds = (mb / med[r]["total"] for r in READERS)
    print(f"\nours-hf / ours-http: {hf / http:.2f}x; ours-hf / hf-datasets: {hf / ds:.2f}x (MB/s)")


if __name__ == "__main__":
    main()
