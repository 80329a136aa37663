"""webdataset through a torch DataLoader: the comparator of B7.

``wds.WebDataset(urls, shardshuffle=False)`` (its default ``split_by_worker`` gives each
DataLoader worker its own shards) -> the same msgpack decode as ours (``msgpack.unpackb``, compact
arrays viewed with ``np.frombuffer``) -> ``.batched(B)`` stacking arrays and numbers into tensors
-> ``DataLoader(..., batch_size=None, num_workers=k)``: what a user writes with the standard tools.
"""

import time

_t0 = time.perf_counter()
import msgpack  # noqa: E402
import torch  # noqa: E402
import webdataset as wds  # noqa: E402

_IMPORT_S = time.perf_counter() - _t0

import struct  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from ..scenarios import Scenario  # noqa: E402
from .common import batch_ids, brace_url, main, shard_files, shards_bytes, timed_pass  # noqa: E402
from .torch_common import TreeMemory  # noqa: E402


def _array(buf: bytes) -> np.ndarray:
    """A compact array (dtype string, ndim, int64 shape, then the bytes) viewed without a copy."""
    dlen = buf[0]
    ndim = buf[1 + dlen]
    shape = struct.unpack_from(f"<{ndim}q", buf, 2 + dlen)
    dtype = np.dtype(buf[1 : 1 + dlen].decode())
    return np.frombuffer(buf, dtype=dtype, offset=2 + dlen + 8 * ndim).reshape(shape)


class _Decode:
    def __init__(self, sc: Scenario) -> None:
        self.arrays = [f.name for f in sc.fields if f.is_array]

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        data = msgpack.unpackb(sample["msgpack"])
        for name in self.arrays:
            data[name] = _array(data[name])
        data["__key__"] = sample["__key__"]
        return data


class _Collate:
    def __init__(self, sc: Scenario) -> None:
        self.fields = sc.fields

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"__key__": [s["__key__"] for s in samples]}
        for f in self.fields:
            col = [s[f.name] for s in samples]
            if f.is_array:
                out[f.name] = torch.from_numpy(np.stack(col))
            elif f.kind in ("int", "float"):
                out[f.name] = torch.tensor(col)
            else:
                out[f.name] = col
        return out


def loader(sc: Scenario, spec: dict[str, Any]) -> dict[str, Any]:
    key = sc.id_field

    def make() -> Any:
        ds = (
            wds.WebDataset(brace_url(spec), shardshuffle=False)
            .map(_Decode(sc))
            .batched(spec["batch"], collation_fn=_Collate(sc), partial=True)
        )
        workers = spec["workers"]
        return torch.utils.data.DataLoader(
            ds, batch_size=None, num_workers=workers, prefetch_factor=2 if workers else None
        )

    with TreeMemory() as mem:
        res = timed_pass(make, lambda b: batch_ids(np.asarray(b[key])), batched=True)
    res.update(mem.result())
    res["bytes"] = shards_bytes(shard_files(spec))
    return res


if __name__ == "__main__":  # benchmarks.gpu_feed_child imports the steps above
    main({"loader": loader}, _IMPORT_S)
