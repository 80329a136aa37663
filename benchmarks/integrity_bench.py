"""The cost of checking shards against their recorded sha256 (issue 9, items 2 and 5).

    uv run python -m benchmarks.integrity_bench [--shards 20] [--per-shard 250] [--repeat 3]
                                                [--modes local,http] [--out PATH]

B3-like data (``image: uint8[224,224,3]`` = 147 KiB, ``label: int``) is written once; each
reading runs in its own child process, ordered batches of 64, and reports the time to the
first batch and the whole epoch:

- ``local off``: a Dataset over the files without checksums (no verification);
- ``local verify, first read``: with ``checksums=`` and an empty verification memo (every shard
  is hashed before it is read);
- ``local verify, memo hit``: the same, in a new process whose memo remembers the shards (one
  ``stat`` per shard, no hashing);
- ``http off`` / ``http verify``: the same shards over the loopback HTTP server of the test
  suite, without and with checksums (with: each shard is downloaded to an unlinked temporary
  file, hashed, checked, then read).

Medians of ``--repeat`` interleaved rounds; the page cache is warm (files read once first).
``--compare-src DIR`` runs every reading a second time with ``DIR`` (another checkout's
``src/``) first on the import path, interleaved, for a before/after comparison.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

_SELF = "benchmarks.integrity_bench"


def _sample_type() -> Any:
    from atdata import packable

    @packable
    class B3:
        image: np.ndarray
        label: int

    return B3


def _write(root: Path, shards: int, per_shard: int) -> list[dict[str, Any]]:
    from atdata.shards.writer import write_samples

    B3 = _sample_type()
    rng = np.random.default_rng(0)
    block = rng.integers(0, 255, (16, 224, 224, 3), dtype=np.uint8)
    samples = (B3(image=block[i % 16], label=i) for i in range(shards * per_shard))
    infos = write_samples(samples, str(root / "b3-%06d.tar"), maxcount=per_shard).shard_infos
    return [{"path": i.url, "sha256": i.checksum.digest, "size": i.size} for i in infos]


def _child(args: argparse.Namespace) -> None:
    from atdata import Dataset

    shards = json.loads(Path(args.manifest).read_text())
    B3 = _sample_type()
    if args.base:
        urls = [f"{args.base}/{Path(s['path']).name}" for s in shards]
    else:
        urls = [s["path"] for s in shards]
    checksums = {u: s["sha256"] for u, s in zip(urls, shards, strict=True)} if args.verify else None
    t0 = time.perf_counter()
    ds = Dataset(urls, B3, checksums=checksums, cache=False)
    first = None
    n = 0
    for batch in ds.ordered(batch_size=64):
        if first is None:
            first = time.perf_counter() - t0
        n += len(batch.label)
    total = time.perf_counter() - t0
    print(json.dumps({"first_batch_s": first, "epoch_s": total, "samples": n}))


def _run(
    manifest: Path, *, verify: bool, base: str = "", memo: Path, src: str = ""
) -> dict[str, Any]:
    env = {**os.environ, "ATDATA_VERIFY_MEMO": str(memo)}
    if src:  # another checkout's src/ (e.g. the code before a change), imported first
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("ATDATA_CACHE_DIR", None)
    cmd = [sys.executable, "-m", _SELF, "--child", "--manifest", str(manifest)]
    if verify:
        cmd.append("--verify")
    if base:
        cmd += ["--base", base]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--manifest")
    parser.add_argument("--verify", action="store_true")
    parser.add_argument("--base", default="")
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--per-shard", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default="local,http")
    parser.add_argument("--out")
    parser.add_argument(
        "--compare-src", default="", help="also run every reading with this src/ (the code before)"
    )
    args = parser.parse_args()
    if args.child:
        _child(args)
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from http_server import FileServer

    modes = set(args.modes.split(","))
    with tempfile.TemporaryDirectory(prefix="atdata-integrity-") as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        shards = _write(data, args.shards, args.per_shard)
        manifest = root / "manifest.json"
        manifest.write_text(json.dumps(shards))
        total_bytes = sum(s["size"] for s in shards)
        for s in shards:  # warm the page cache
            Path(s["path"]).read_bytes()
        rows: dict[str, list[dict[str, Any]]] = {}
        with FileServer(data) as server:
            for r in range(args.repeat):
                memo = root / f"memo-{r}.sqlite"
                plan: list[tuple[str, bool, str]] = []
                if "local" in modes:
                    plan += [
                        ("local off", False, ""),
                        ("local verify, first read", True, ""),
                        ("local verify, memo hit", True, ""),
                    ]
                if "http" in modes:
                    plan += [("http off", False, server.url), ("http verify", True, server.url)]
                for name, verify, base in plan:
                    rows.setdefault(name, []).append(
                        _run(manifest, verify=verify, base=base, memo=memo)
                    )
                    if args.compare_src:
                        rows.setdefault(name + " [before]", []).append(
                            _run(
                                manifest,
                                verify=verify,
                                base=base,
                                memo=root / f"memo-before-{r}.sqlite",
                                src=args.compare_src,
                            )
                        )
        report: dict[str, Any] = {
            "shards": args.shards,
            "samples": args.shards * args.per_shard,
            "bytes": total_bytes,
            "repeat": args.repeat,
            "results": {},
        }
        print(
            f"{args.shards} shards, {args.shards * args.per_shard} samples, "
            f"{total_bytes / 2**20:.0f} MiB; medians of {args.repeat}"
        )
        print(f"{'reading':28} {'first batch':>12} {'epoch':>9} {'MiB/s':>8}")
        for name, runs in rows.items():
            first = statistics.median(x["first_batch_s"] for x in runs)
            epoch = statistics.median(x["epoch_s"] for x in runs)
            report["results"][name] = {"first_batch_s": first, "epoch_s": epoch}
            print(
                f"{name:28} {first * 1e3:10.1f}ms {epoch:8.3f}s {total_bytes / 2**20 / epoch:8.0f}"
            )
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
