"""Our atdata reading B3 from the loopback HTTP and S3 servers of ``benchmarks.remote_bench``.

Ops:

- ``read``: ``Dataset[T](url, cache=...).ordered(batch_size=B)`` over ``spec['transport']``
  (``http`` or ``s3``), ``spec['epochs']`` times on the same dataset; with ``cache_dir`` the
  shards go through a :class:`ShardCache` there, else ``cache=False``. Each epoch reports its
  window on the monotonic clock so that the benchmark counts the requests made inside it.
  With ``profile`` (a path) the first epoch runs under cProfile and its statistics go there.
- ``bytes``: the transfer floor of the client library ours uses: every shard's bytes through
  one ``httpx.Client`` (``iter_raw``) or one boto3 client (``get_object`` body reads), nothing
  parsed or kept. Timed from before ``import httpx`` / ``import boto3`` and the client's
  construction, as ours is timed from its ``ordered()`` call (inside which it imports and builds them).
"""

import os
import time

_t0 = time.perf_counter()
import atdata  # noqa: E402

_IMPORT_S = time.perf_counter() - _t0

import collections  # noqa: E402
import contextlib  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

from ..scenarios import Scenario  # noqa: E402
from .common import batch_ids, main, shard_files, shards_bytes  # noqa: E402
from .remote import http_url, loopback_guard, s3_url, shard_names, timed_epoch  # noqa: E402
from .typed import sample_type  # noqa: E402

_BYTES_CHUNK = 1 << 20


@contextlib.contextmanager
def _s3_config(spec: dict[str, Any]) -> Iterator[None]:
    if spec["transport"] != "s3":
        yield
        return
    from atdata.sources.s3 import configure

    s3 = spec["s3"]
    checksums = s3.get("checksums")  # "when_required" for servers without the new checksums
    with configure(
        endpoint_url=s3["endpoint"],
        region=s3["region"],
        access_key_id=s3["key"],
        secret_access_key=s3["secret"],
        request_checksum_calculation=checksums,
        response_checksum_validation=checksums,
    ):
        yield


def _url(spec: dict[str, Any]) -> str:
    return http_url(spec) if spec["transport"] == "http" else s3_url(spec)


def read(sc: Scenario, spec: dict[str, Any]) -> dict[str, Any]:
    loopback_guard()
    if spec.get("readahead_chunk") is not None:  # read-ahead chunk in bytes; 0 turns it off
        os.environ["ATDATA_READAHEAD_CHUNK"] = str(spec["readahead_chunk"])
    if spec.get("readahead"):  # auto (the default), on or off
        os.environ["ATDATA_READAHEAD"] = spec["readahead"]
    switches = _count_readahead_switches()
    T = sample_type(sc)
    key = sc.id_field
    cache = spec.get("cache_dir") or False
    epochs: list[dict[str, Any]] = []
    with _s3_config(spec):
        ds = atdata.Dataset[T](_url(spec), cache=cache)
        for epoch in range(spec.get("epochs", 1)):
            profiler = None
            if epoch == 0 and spec.get("profile"):
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            res = timed_epoch(
                lambda: ds.ordered(batch_size=spec["batch"]), lambda b: batch_ids(getattr(b, key))
            )
            if profiler is not None:
                profiler.disable()
                _dump_profile(profiler, spec["profile"], res["seconds"])
            epochs.append(res)
    total = shards_bytes(shard_files(spec))
    for res in epochs:
        res["bytes"] = total
    epochs[0]["readahead"] = dict(switches)
    return dict(epochs[0], epochs=epochs)


def _count_readahead_switches() -> "collections.Counter[str]":
    """How often read-ahead engaged and disengaged (its debug log), for the bench's report."""
    import logging

    counts: collections.Counter[str] = collections.Counter()

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            counts[record.getMessage().split(" (")[0].removeprefix("read-ahead ")] += 1

    log = logging.getLogger("atdata.net.readahead")
    log.setLevel(logging.DEBUG)
    log.addHandler(Count())
    return counts


def _dump_profile(profiler: Any, path: str, seconds: float) -> None:
    import io
    import pstats

    out = io.StringIO()
    out.write(f"one epoch, {seconds:.3f} s wall (under the profiler)\n")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(30)
    with open(path, "w") as f:
        f.write(out.getvalue())


def transfer(sc: Scenario, spec: dict[str, Any]) -> dict[str, Any]:
    """Every shard's bytes through the client library alone (no atdata code), each chunk a
    bytes object in Python. Timed like ours: from before the library's import and the client's
    construction (both lazy in ours, inside its timed epoch) to the last byte."""
    loopback_guard()
    clock, cpu = time.perf_counter, time.process_time
    chunks: Callable[[str], Iterator[bytes]]
    first = None
    start = time.monotonic()
    # timed from here, as ours is timed from its ``ordered()`` call: the client library's import
    # (bytecode cached, as for ours) and the client's construction count on both sides
    t0, c0 = clock(), cpu()
    if spec["transport"] == "http":
        import httpx

        base = spec["http"].rstrip("/")
        client = httpx.Client(headers={"Accept-Encoding": "identity"})

        def chunks(name: str) -> Iterator[bytes]:
            with client.stream("GET", f"{base}/{name}") as response:
                response.raise_for_status()
                yield from response.iter_raw()

    else:
        import boto3
        from botocore.config import Config

        s3 = spec["s3"]
        checks = s3.get("checksums")
        s3_client = boto3.client(
            "s3",
            endpoint_url=s3["endpoint"],
            region_name=s3["region"],
            aws_access_key_id=s3["key"],
            aws_secret_access_key=s3["secret"],
            config=Config(request_checksum_calculation=checks, response_checksum_validation=checks)
            if checks
            else None,
        )

        def chunks(name: str) -> Iterator[bytes]:
            body = s3_client.get_object(Bucket=s3["bucket"], Key=s3["prefix"] + name)["Body"]
            while chunk := body.read(_BYTES_CHUNK):
                yield chunk

    total = 0
    for name in shard_names(spec):
        for chunk in chunks(name):
            if first is None:
                first = clock() - t0
            total += len(chunk)
    seconds, cpu_s = clock() - t0, cpu() - c0
    window = [start, time.monotonic()]
    expected = shards_bytes(shard_files(spec))
    if total != expected:
        raise SystemExit(f"transferred {total} bytes, the shards hold {expected}")
    return {
        "seconds": seconds,
        "ttfb": first,
        "cpu": cpu_s,
        "bytes": total,
        "items": spec["n"],
        "window": window,
    }


main({"read": read, "bytes": transfer}, _IMPORT_S)
