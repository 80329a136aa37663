"""Our torch paths for B7: ``ds.to_torch()`` through a DataLoader, the in-process feed, resume."""

import time

_t0 = time.perf_counter()
import torch  # noqa: E402

import atdata  # noqa: E402
import atdata.torch  # noqa: E402
from atdata.torch.feed import feed  # noqa: E402

_IMPORT_S = time.perf_counter() - _t0

from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from ..scenarios import Scenario  # noqa: E402
from .common import batch_ids, brace_url, main, shard_files, shards_bytes, timed_pass  # noqa: E402
from .torch_common import TreeMemory, clock, median_ms  # noqa: E402
from .typed import sample_type  # noqa: E402

_RESUME_REPS = 5


def _dataset(sc: Scenario, spec: dict[str, Any]) -> Any:
    return atdata.Dataset[sample_type(sc)](brace_url(spec))  # type: ignore[misc]


def _dataloader(tds: Any, workers: int) -> Any:
    return torch.utils.data.DataLoader(
        tds, batch_size=None, num_workers=workers, prefetch_factor=2 if workers else None
    )


def _measure(sc: Scenario, spec: dict[str, Any], make: Any) -> dict[str, Any]:
    key = sc.id_field
    with TreeMemory() as mem:
        res = timed_pass(make, lambda b: batch_ids(np.asarray(b[key])), batched=True)
    res.update(mem.result())
    res["bytes"] = shards_bytes(shard_files(spec))
    return res


def loader(sc: Scenario, spec: dict[str, Any]) -> dict[str, Any]:
    """``DataLoader(ds.to_torch(batch_size=B), batch_size=None, num_workers=k)``."""

    def make() -> Any:
        tds = _dataset(sc, spec).to_torch(batch_size=spec["batch"], drop_last=False)
        return _dataloader(tds, spec["workers"])

    return _measure(sc, spec, make)


def tloader(sc: Scenario, spec: dict[str, Any]) -> dict[str, Any]:
    """``atdata.torch.loader(ds.to_torch(batch_size=B), num_workers=k)`` (its own collate_fn)."""

    def make() -> Any:
        tds = _dataset(sc, spec).to_torch(batch_size=spec["batch"], drop_last=False)
        return atdata.torch.loader(tds, num_workers=spec["workers"])

    return _measure(sc, spec, make)


def feed_op(sc: Scenario, spec: dict[str, Any]) -> dict[str, Any]:
    """``atdata.torch.feed(ds, batch_size=B, threads=k)``: reader threads, no worker processes."""

    def make() -> Any:
        return feed(
            _dataset(sc, spec), batch_size=spec["batch"], threads=spec["workers"], drop_last=False
        )

    return _measure(sc, spec, make)


def resume(sc: Scenario, spec: dict[str, Any]) -> dict[str, Any]:
    """Time to the first batch after resuming at 50 % of an ordered epoch, from a fresh object.

    The state is taken from a real object (``state_dict()`` after consuming a few batches, with
    its position moved to the middle of the epoch); each repetition builds the dataset, loads the
    state and takes one batch. The rest of the epoch is then checked once: exactly the second
    half of the ids.
    """
    key = sc.id_field
    batch, n = spec["batch"], spec["n"]
    half = n // 2 // batch * batch
    out: dict[str, Any] = {"position": half, "items": 1}

    def check_rest(it: Any) -> bool:
        ids = np.concatenate([batch_ids(np.asarray(b[key])) for b in it])
        return bool(np.array_equal(np.sort(ids), np.arange(half, n)))

    variants = {
        "torch_w0": lambda ds: ds.to_torch(batch_size=batch, drop_last=False),
        "loader_w2": lambda ds: atdata.torch.loader(
            ds.to_torch(batch_size=batch, drop_last=False), num_workers=2
        ),
        "feed": lambda ds: feed(ds, batch_size=batch, threads=2, drop_last=False),
    }
    for name, build in variants.items():
        state = build(_dataset(sc, spec)).state_dict()
        state["position"] = half
        times = []
        for _ in range(_RESUME_REPS):
            t0 = clock()
            obj = build(_dataset(sc, spec))
            obj.load_state_dict(state)
            it = iter(obj)
            first = next(it)
            times.append(clock() - t0)
            del it, first
        out[f"{name}_ms"] = median_ms(times)
        obj = build(_dataset(sc, spec))
        obj.load_state_dict(state)
        out[f"{name}_exact"] = check_rest(obj)
    out["seconds"] = out["torch_w0_ms"] / 1e3
    return out


main({"loader": loader, "tloader": tloader, "feed": feed_op, "resume": resume}, _IMPORT_S)
