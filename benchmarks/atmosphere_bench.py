"""The atmosphere measurement of issue 6: publish a ~100 MB dataset as PDS blobs, then load it
by ``@handle/name`` and time the first batch; ours against atdata 0.7.0b1, same PDS, same bytes.

    uv run python -m benchmarks.atmosphere_bench [--runs 5] [--samples 400] [--batch 32]

What happens:

1. A local PDS + PLC directory is started from the test harness (``.test-infra.env`` names
   ``PDS_NODE`` / ``PDS_HARNESS_DIR``; see ``shared/INFRA.md``) with its ``guard.mjs``: every
   socket stays on loopback. This process refuses non-loopback connections and name lookups too.
2. 400 samples of ``x: float32[65536], label: int`` (100 MiB) are written once with our
   ``Index.write`` into 3 shards of at most 48 MiB (under the 50 MiB blob limit of the lexicon).
3. Each round, for each implementation, a fresh account:

   * **publish** (timed): ours ``index.publish("vecs", to=session)`` (schema, blob uploads with
     CIDs computed and checked, entry, label); atdata 0.7 ``SchemaPublisher.publish`` +
     ``DatasetPublisher.publish_with_blobs`` (shard files read in the timing, as ours does) +
     ``LabelPublisher.publish``. Login is not timed.
   * **load** (timed from the ``load_dataset`` call): ours ``atdata.load_dataset("@handle/vecs")``
     with a ``Resolver`` on the local PLC and PDS, no shard cache; atdata 0.7
     ``atdata.load_dataset("@handle/vecs", index=Index(atmosphere=Atmosphere(base_url=pds)))``.
     Then ``.ordered(batch_size=32)``: time to the first batch, and to the end of the pass. Every
     pass must deliver labels ``0..n-1`` exactly once.

   Rounds interleave ours and 0.7 so that drift hits both. atdata 0.7 runs in its own Python 3.12
   venv (``benchmarks/.venv07``, made by :mod:`benchmarks.venv07`): this file is re-run there
   with ``--atdata07-driver``, importing only atdata 0.7, and prints its timings as JSON.

atdata 0.7 needs two workarounds against a private network, both applied in its driver: its
``Atmosphere`` lacks the ``_resolve_pds_endpoint`` its blob source calls, and it resolves DIDs
with the hard-coded public PLC directory, so the PDS endpoint of each DID is pre-seeded in its
module-level cache; in fairness ours resolves each DID once, untimed, before its timed load, so
that its identity cache (``$ATDATA_HOME/cache/identity``, here under the bench's temporary
directory) holds the DID's handles and PDS (``--cold-identity`` skips that). Ours verifies every
byte before using it: each 1 MiB chunk against the digest in the entry record as it streams, and
the whole blob against its CID (atdata 0.7 streams blob bytes unverified).

Prints a markdown table (medians) and writes ``benchmarks/.data/atmosphere.json``.
"""

import argparse
import ipaddress
import json
import os
import platform
import queue
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / ".data" / "atmosphere.json"
PASSWORD = "bench-password"
DIM = 65536  # float32 -> 256 KiB per sample
SHARD_BYTES = 48 << 20


# ----------------------------------------------------------------------------------- loopback
def _loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(str(host).strip("[]")).is_loopback
    except ValueError:
        return False


def loopback_only() -> None:
    """Make this process refuse every connection and name lookup that is not loopback."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(str(address[0])):
            raise OSError(f"benchmark guard: refusing to connect to {address!r}")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _loopback(str(host)):
            raise socket.gaierror(f"benchmark guard: refusing to look up {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo


def check_labels(labels: list[int], n: int) -> None:
    """Every label 0..n-1 exactly once."""
    if sorted(labels) != list(range(n)):
        raise AssertionError(f"expected labels 0..{n - 1} exactly once, got {len(labels)} labels")


# ---------------------------------------------------------------------- atdata 0.7 (driver mode)
def atdata07_driver(spec: dict[str, Any]) -> dict[str, Any]:
    """One round of atdata 0.7: publish as blobs, then load by @handle/name. Runs in .venv07."""
    loopback_only()
    from numpy.typing import NDArray

    import atdata  # atdata 0.7.0b1 in this interpreter
    import atdata.atmosphere as am
    from atdata.atmosphere import client, labels, records, schema

    Atmosphere = client.Atmosphere

    @atdata.packable
    class Vec:
        x: NDArray
        label: int

    pds, handle = spec["pds"], spec["handle"]
    atmo = Atmosphere.login(handle, spec["password"], base_url=pds)
    # workarounds (see the module docs): a missing method, and a hard-coded public PLC URL
    Atmosphere._resolve_pds_endpoint = lambda self, did: pds  # type: ignore[attr-defined]
    am._pds_endpoint_cache[atmo.did] = pds  # type: ignore[attr-defined]

    t0 = time.perf_counter()
    schema_uri = schema.SchemaPublisher(atmo).publish(Vec, version="1.0.0")
    blobs = [Path(p).read_bytes() for p in spec["shards"]]
    uri = records.DatasetPublisher(atmo).publish_with_blobs(blobs, str(schema_uri), name="vecs")
    labels.LabelPublisher(atmo).publish("vecs", str(uri), version="1")
    publish_s = time.perf_counter() - t0
    del blobs

    reader = Atmosphere(base_url=pds)
    t0 = time.perf_counter()
    index = atdata.Index(atmosphere=reader)
    ds = atdata.load_dataset(f"@{handle}/vecs", Vec, split="train", index=index)
    resolve_s = time.perf_counter() - t0
    seen: list[int] = []
    first_batch_s = None
    for batch in ds.ordered(batch_size=spec["batch"]):
        if first_batch_s is None:
            first_batch_s = time.perf_counter() - t0
        seen.extend(int(v) for v in batch.label)
    read_all_s = time.perf_counter() - t0
    check_labels(seen, spec["n"])
    return {
        "publish_s": publish_s,
        "resolve_s": resolve_s,
        "first_batch_s": first_batch_s,
        "read_all_s": read_all_s,
        "samples": len(seen),
        "uri": str(uri),
        "loaded_by": f"@{handle}/vecs",
    }


def run_atdata07(python: Path, spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATDATA_", "PYTHON"))}
    env["HOME"] = str(workdir)  # atdata 0.7's default Index writes ~/.atdata/index.db
    done = subprocess.run(
        [str(python), __file__, "--atdata07-driver", json.dumps(spec)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the atdata 0.7 driver failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------------------------- the PDS
def _infra_env() -> dict[str, str]:
    """PDS_NODE / PDS_HARNESS_DIR from the environment, else from .test-infra.env."""
    found: dict[str, str] = {}
    path = ROOT / ".test-infra.env"
    if path.is_file():
        for line in path.read_text().splitlines():
            words = shlex.split(line, comments=True)
            for word in words[1:] if words[:1] == ["export"] else words:
                key, sep, value = word.partition("=")
                if sep:
                    found[key] = value
    return {k: os.environ.get(k) or found.get(k, "") for k in ("PDS_NODE", "PDS_HARNESS_DIR")}


@contextmanager
def local_pds() -> Iterator[dict[str, Any]]:
    """A PDS + in-memory PLC directory from the test harness, on loopback; its launch JSON."""
    infra = _infra_env()
    harness = Path(infra["PDS_HARNESS_DIR"] or ROOT / "tests" / "pds_harness")
    node = infra["PDS_NODE"] or shutil.which("node") or ""
    if not Path(node).is_file() or not (harness / "node_modules" / "@atproto" / "pds").is_dir():
        raise SystemExit(
            "the PDS harness is not installed: run `sudo bash scripts/provision-test-infra.sh` "
            "(it writes .test-infra.env with PDS_NODE and PDS_HARNESS_DIR)"
        )
    data = Path(tempfile.mkdtemp(prefix="atdata-bench-pds-"))
    env = {**os.environ, "PDS_DATA_DIR": str(data), "LOG_ENABLED": "false"}
    with open(data.parent / f"{data.name}.log", "wb") as log:
        proc = subprocess.Popen(
            [node, "--import", "./guard.mjs", "launch.mjs"],
            cwd=harness,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()  # type: ignore[union-attr]
    try:
        try:
            line = lines.get(timeout=90)
        except queue.Empty:
            line = ""
        if not line:
            raise RuntimeError(f"the PDS did not start (exit {proc.poll()}); see {log.name}")
        info: dict[str, Any] = json.loads(line)
        info["node_version"] = info.get("node")
        yield info
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
        shutil.rmtree(data, ignore_errors=True)
        Path(log.name).unlink(missing_ok=True)


def create_account(pds: str, prefix: str) -> str:
    from atproto import Client, models

    handle = f"{prefix}{os.urandom(4).hex()}.test"
    Client(base_url=pds).com.atproto.server.create_account(
        models.ComAtprotoServerCreateAccount.Data(
            handle=handle, email=f"{handle}@example.test", password=PASSWORD
        )
    )
    return handle


# ---------------------------------------------------------------------------------------- ours
def write_dataset(home: Path, n: int, shard_bytes: int | None = None) -> Any:
    """``n`` samples of float32[DIM] + label into the index at ``home``; the entry."""
    from typing import Annotated

    import numpy as np
    from numpy.typing import NDArray

    from atdata.index import Index
    from atdata.sample import packable
    from atdata.schema import Shape

    @packable
    class Vec:
        x: Annotated[NDArray[np.float32], Shape(DIM)]
        label: int

    rng = np.random.default_rng(0)
    with Index(home=home) as index:
        return index.write(
            (Vec(rng.random(DIM, dtype=np.float32), i) for i in range(n)),
            "vecs",
            maxsize=shard_bytes or SHARD_BYTES,
        )


def run_ours(
    info: dict[str, Any], home: Path, n: int, batch: int, *, seed_identity: bool = True
) -> dict[str, Any]:
    import atdata
    from atdata.atmosphere import AtmosphereSession, Resolver
    from atdata.index import Index

    pds = info["pds"]
    handle = create_account(pds, "o")
    session = AtmosphereSession.login(pds, handle, PASSWORD)
    with Index(home=home) as index:
        t0 = time.perf_counter()
        published = index.publish("vecs", to=session)
        publish_s = time.perf_counter() - t0
    assert published.created

    if seed_identity:
        # as atdata 0.7's PDS-endpoint cache is seeded (see the module docs): resolve the DID
        # once, untimed, so that its handles and PDS are in $ATDATA_HOME/cache/identity
        seeder = Resolver(plc_url=info["plc"], handle_resolver_pds=pds)
        seeder.pds_endpoint(session.did)
        seeder.close()
    resolver = Resolver(plc_url=info["plc"], handle_resolver_pds=pds)  # nothing in memory
    labels: list[int] = []
    first_batch_s = None
    with resolver.activate():
        t0 = time.perf_counter()
        ds = atdata.load_dataset(f"@{handle}/vecs", split="train")
        resolve_s = time.perf_counter() - t0
        for b in ds.ordered(batch_size=batch):
            if first_batch_s is None:
                first_batch_s = time.perf_counter() - t0
            labels.extend(int(v) for v in b.label)
        read_all_s = time.perf_counter() - t0
    resolver.close()
    check_labels(labels, n)
    return {
        "publish_s": publish_s,
        "resolve_s": resolve_s,
        "first_batch_s": first_batch_s,
        "read_all_s": read_all_s,
        "samples": len(labels),
        "uri": str(published.uri),
        "loaded_by": f"@{handle}/vecs",
    }


# -------------------------------------------------------------------------------------- report
METRICS = (
    ("publish_s", "publish {mb:.0f} MB as blobs (schema, blobs, entry, label)"),
    ("resolve_s", 'load_dataset("@handle/name") returns (records resolved)'),
    ("first_batch_s", "time to first batch of {batch}, loading by @handle/name"),
    ("read_all_s", "load and read all {n} samples"),
)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, _ in METRICS:
        values = [float(r[key]) for r in runs]
        out[key] = {
            "median": _median(values),
            "min": min(values),
            "max": max(values),
            "all": values,
        }
    return out


def table(result: dict[str, Any]) -> str:
    ds = result["dataset"]
    mb = ds["bytes"] / 1e6
    ours, theirs = result["ours"]["summary"], result["atdata07"]["summary"]
    lines = [
        f"Atmosphere, {ds['samples']} samples x {DIM * 4 // 1024} KiB = {mb:.1f} MB in "
        f"{ds['shards']} shards, local PDS on loopback, medians of {result['runs']} runs "
        f"(page cache warm)",
        "",
        "| measure | ours (s) | atdata 0.7 (s) | ours / 0.7 |",
        "|---|---:|---:|---:|",
    ]
    for key, label in METRICS:
        a, b = ours[key]["median"], theirs[key]["median"]
        text = label.format(mb=mb, batch=result["batch"], n=ds["samples"])
        lines.append(f"| {text} | {a:.3f} | {b:.3f} | {a / b:.2f}x |")
    pub = ours["publish_s"]["median"], theirs["publish_s"]["median"]
    read = ours["read_all_s"]["median"], theirs["read_all_s"]["median"]
    lines += [
        "",
        f"throughput: publish {mb / pub[0]:.0f} MB/s (ours) vs {mb / pub[1]:.0f} MB/s (0.7); "
        f"load+read {mb / read[0]:.0f} MB/s (ours) vs {mb / read[1]:.0f} MB/s (0.7)",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds (median; at least 3)")
    parser.add_argument("--samples", type=int, default=400, help="samples of 256 KiB")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--no-atdata07", action="store_true", help="measure ours only")
    parser.add_argument(
        "--shard-mib", type=int, help=f"largest shard (blob) in MiB (default {SHARD_BYTES >> 20})"
    )
    parser.add_argument(
        "--cold-identity",
        action="store_true",
        help="do not seed our identity cache (atdata 0.7's endpoint cache is seeded regardless)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--atdata07-driver", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.atdata07_driver:
        print(json.dumps(atdata07_driver(json.loads(args.atdata07_driver))))
        return
    if args.runs < 3:
        parser.error("--runs must be at least 3 (the figures are medians)")

    loopback_only()
    os.environ.pop("ATDATA_CACHE_DIR", None)
    python07: Path | None = None
    if not args.no_atdata07:
        from benchmarks import venv07

        python07 = venv07.ensure()

    say: Callable[..., None] = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    work = Path(tempfile.mkdtemp(prefix="atdata-bench-atmo-"))
    os.environ["ATDATA_HOME"] = str(work / "atdata-home")  # our identity cache, not ~/.atdata
    try:
        say(f"writing {args.samples} samples of {DIM * 4 // 1024} KiB ...")
        shard_bytes = args.shard_mib << 20 if args.shard_mib else None
        entry = write_dataset(work / "home", args.samples, shard_bytes)
        shard_files = [s.url.removeprefix("file://") for s in entry.shards]
        dataset = {
            "samples": entry.count,
            "bytes": sum(s.size for s in entry.shards),
            "shards": len(entry.shards),
            "shard_bytes": [s.size for s in entry.shards],
        }
        ours: list[dict[str, Any]] = []
        theirs: list[dict[str, Any]] = []
        with local_pds() as info:
            say(f"PDS {info['pds']} (PLC {info['plc']}), node {info.get('node')}")
            for i in range(args.runs):
                ours.append(
                    run_ours(
                        info,
                        work / "home",
                        args.samples,
                        args.batch,
                        seed_identity=not args.cold_identity,
                    )
                )
                line = f"round {i + 1}/{args.runs}: ours " + _brief(ours[-1])
                if python07 is not None:
                    spec = {
                        "pds": info["pds"],
                        "handle": create_account(info["pds"], "s"),
                        "password": PASSWORD,
                        "shards": shard_files,
                        "batch": args.batch,
                        "n": args.samples,
                    }
                    theirs.append(run_atdata07(python07, spec, work))
                    line += "; atdata 0.7 " + _brief(theirs[-1])
                say(line)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result: dict[str, Any] = {
        "benchmark": "atmosphere",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "pds": {
            "harness": "@atproto/pds 0.5.35 + @did-plc/server, loopback",
            "node": info.get("node"),
        },
        "runs": args.runs,
        "batch": args.batch,
        "dataset": dataset,
        "ours": {"summary": summarize(ours), "runs": ours},
        "notes": [
            "ours verifies every byte before use (each chunk against the digest in the record, "
            "the whole blob against its CID); atdata 0.7 streams blob bytes unverified",
            "atdata 0.7 workarounds: Atmosphere._resolve_pds_endpoint patched in (missing), and "
            "each DID's PDS pre-seeded in atdata.atmosphere._pds_endpoint_cache (its PLC URL is "
            "hard-coded to the public directory)",
            "ours: the DID resolved once before the timed load (our identity cache under "
            "ATDATA_HOME seeded, as 0.7's endpoint cache is)"
            if not args.cold_identity
            else "ours: identity cache not seeded (--cold-identity)",
        ],
    }
    if theirs:
        result["atdata07"] = {"summary": summarize(theirs), "runs": theirs, "version": "0.7.0b1"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if theirs:
        print(table(result))
    else:
        for key, label in METRICS:
            print(
                f"{label.format(mb=dataset['bytes'] / 1e6, batch=args.batch, n=args.samples)}: "
                f"{result['ours']['summary'][key]['median']:.3f} s"
            )
    say(f"wrote {args.out}")


def _brief(r: dict[str, Any]) -> str:
    return (
        f"publish {r['publish_s']:.2f} s, first batch {r['first_batch_s']:.3f} s, "
        f"all {r['read_all_s']:.2f} s"
    )


if __name__ == "__main__":
    main()
