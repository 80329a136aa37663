"""atdata 0.7.0b1, the comparator: runs in benchmarks/.venv07 (Python 3.12), never imports ours."""

import time

_t0 = time.perf_counter()
import atdata  # noqa: E402  (atdata 0.7 here)

_IMPORT_S = time.perf_counter() - _t0

import os  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from numpy.typing import NDArray  # noqa: E402

from ..scenarios import Scenario, iter_samples  # noqa: E402
from .common import (  # noqa: E402
    batch_ids,
    brace_url,
    first_element_id,
    main,
    shard_files,
    shards_bytes,
    timed_pass,
)
from .remote import http_url, loopback_guard, s3_keys, timed_epoch  # noqa: E402


def sample_type(sc: Scenario) -> type:
    """The scenario's sample type in atdata 0.7's terms (arrays are plain ``NDArray``)."""
    kinds = {"int": int, "str": str, "float": float}
    ann = {f.name: kinds.get(f.kind, NDArray) for f in sc.fields}
    cls = type(f"{sc.id}Sample", (), {"__annotations__": ann, "__module__": __name__})
    return atdata.packable(cls)


def write(sc: Scenario, spec: dict[str, Any], durable: bool = False) -> dict[str, Any]:
    """atdata 0.7's ``write_samples`` (it never fsyncs); ``durable``: then fsync what it wrote."""
    out = Path(spec["dir"])
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    T = sample_type(sc)
    gen = [0.0, 0.0]  # generation: wall, CPU
    t0 = time.perf_counter()
    c0 = time.process_time()
    atdata.write_samples(
        iter_samples(sc, spec["n"], T, gen), str(out / spec["pattern"]), maxcount=spec["per_shard"]
    )
    files = sorted(str(p) for p in out.glob("*.tar"))
    if durable:  # what ours does by default: every file on disk, and the directory
        for name in files:
            fd = os.open(name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(out, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": total - gen[0],
        "gen_s": gen[0],
        "cpu": cpu - gen[1],
        "items": spec["n"],
        "bytes": shards_bytes(files),
        "shards": len(files),
    }


def _read(sc: Scenario, spec: dict[str, Any], shuffled: bool, batched: bool) -> dict[str, Any]:
    T = sample_type(sc)
    key = sc.id_field

    def make() -> Any:
        ds = atdata.Dataset[T](brace_url(spec))
        size = spec["batch"] if batched else None
        return ds.shuffled(batch_size=size) if shuffled else ds.ordered(batch_size=size)

    if batched:
        res = timed_pass(make, lambda b: batch_ids(getattr(b, key)), batched=True)
    else:
        res = timed_pass(make, lambda s: first_element_id(getattr(s, key)), batched=False)
    res["bytes"] = shards_bytes(shard_files(spec))
    return res


def _read_remote(sc: Scenario, spec: dict[str, Any]) -> dict[str, Any]:
    """Ordered batches from the loopback servers of ``benchmarks.remote_bench``.

    http: the brace URL as a string (atdata 0.7 opens it with webdataset's ``gopen``, i.e. a
    ``curl`` subprocess per shard). s3: its ``S3Source`` with the custom endpoint and explicit
    credentials (webdataset 1.0's ``gopen`` has no handler for ``s3://`` strings at all).
    """
    loopback_guard()
    T = sample_type(sc)
    key = sc.id_field
    if spec["transport"] == "http":
        source: Any = http_url(spec)
    else:
        s3 = spec["s3"]
        source = atdata.S3Source(
            bucket=s3["bucket"],
            keys=s3_keys(spec),
            endpoint=s3["endpoint"],
            access_key=s3["key"],
            secret_key=s3["secret"],
            region=s3["region"],
        )

    def make() -> Any:
        return atdata.Dataset[T](source).ordered(batch_size=spec["batch"])

    res = timed_epoch(make, lambda b: batch_ids(getattr(b, key)))
    res["bytes"] = shards_bytes(shard_files(spec))
    return res


main(
    {
        "write": write,
        "write-fsync": lambda sc, spec: write(sc, spec, durable=True),
        "ordered": lambda sc, spec: _read(sc, spec, shuffled=False, batched=True),
        "shuffled": lambda sc, spec: _read(sc, spec, shuffled=True, batched=True),
        "unbatched": lambda sc, spec: _read(sc, spec, shuffled=False, batched=False),
        "remote": _read_remote,
    },
    _IMPORT_S,
)
