"""webdataset raw: the floor from standard tools. ``WebDataset(urls)`` yields each member's raw
``.msgpack`` bytes; ``msgpack.unpackb`` decodes them; batches are plain lists of the decoded maps
(no stacking, no array decoding)."""

import time

_t0 = time.perf_counter()
import msgpack  # noqa: E402
import webdataset as wds  # noqa: E402

_IMPORT_S = time.perf_counter() - _t0

from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from ..scenarios import Scenario  # noqa: E402
from .common import brace_url, first_element_id, main, shard_files, shards_bytes, timed_pass  # noqa: E402

_SHUFFLE_BUFFER = 10_000


def _batches(samples: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for s in samples:
        batch.append(msgpack.unpackb(s["msgpack"]))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _read(sc: Scenario, spec: dict[str, Any], shuffled: bool) -> dict[str, Any]:
    key = sc.id_field

    def make() -> Any:
        if shuffled:
            ds = wds.WebDataset(brace_url(spec), shardshuffle=spec["shards"], seed=spec["seed"])
            ds = ds.shuffle(_SHUFFLE_BUFFER, seed=spec["seed"])
        else:
            ds = wds.WebDataset(brace_url(spec), shardshuffle=False)
        return _batches(iter(ds), spec["batch"])

    def ids_of(batch: list[dict[str, Any]]) -> np.ndarray:
        return np.fromiter(
            (first_element_id(m[key]) for m in batch), dtype=np.int64, count=len(batch)
        )

    res = timed_pass(make, ids_of, batched=True)
    res["bytes"] = shards_bytes(shard_files(spec))
    return res


main(
    {
        "ordered": lambda sc, spec: _read(sc, spec, shuffled=False),
        "shuffled": lambda sc, spec: _read(sc, spec, shuffled=True),
    },
    _IMPORT_S,
)
