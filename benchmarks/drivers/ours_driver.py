"""Our atdata: write with ``atdata.write_samples``, read with ``atdata.Dataset[T]``."""

import time

_t0 = time.perf_counter()
import atdata  # noqa: E402

_IMPORT_S = time.perf_counter() - _t0

import hashlib  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

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
from .typed import sample_type  # noqa: E402


def write(sc: Scenario, spec: dict[str, Any], durable: bool = True) -> dict[str, Any]:
    out = Path(spec["dir"])
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    T = sample_type(sc)
    gen = [0.0, 0.0]  # generation: wall, CPU
    t0, c0 = time.perf_counter(), time.process_time()
    infos = atdata.write_samples(
        iter_samples(sc, spec["n"], T, gen),
        str(out / spec["pattern"]),
        maxcount=spec["per_shard"],
        durable=durable,
    ).shard_infos
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    files = [str(i.url) for i in infos]
    digest = hashlib.sha256("".join(i.checksum.digest for i in infos).encode()).hexdigest()[:16]
    return {
        "seconds": total - gen[0],
        "gen_s": gen[0],
        "cpu": cpu - gen[1],
        "items": sum(i.count for i in infos),
        "bytes": shards_bytes(files),
        "shards": len(files),
        "shards_sha256": digest,
    }


def _read(sc: Scenario, spec: dict[str, Any], shuffled: bool, batched: bool) -> dict[str, Any]:
    T = sample_type(sc)
    key = sc.id_field
    size = spec["batch"] if batched else None

    def make() -> Any:
        ds = atdata.Dataset[T](brace_url(spec))
        return (
            ds.shuffled(seed=spec["seed"], batch_size=size)
            if shuffled
            else ds.ordered(batch_size=size)
        )

    if batched:
        res = timed_pass(make, lambda b: batch_ids(getattr(b, key)), batched=True)
    else:
        res = timed_pass(make, lambda s: first_element_id(getattr(s, key)), batched=False)
    res["bytes"] = shards_bytes(shard_files(spec))
    return res


main(
    {
        "write": write,
        "write-nofsync": lambda sc, spec: write(sc, spec, durable=False),
        "ordered": lambda sc, spec: _read(sc, spec, shuffled=False, batched=True),
        "shuffled": lambda sc, spec: _read(sc, spec, shuffled=True, batched=True),
        "unbatched": lambda sc, spec: _read(sc, spec, shuffled=False, batched=False),
    },
    _IMPORT_S,
)
