"""One configuration of ``benchmarks.gpu_feed``, in its own process.

    python -m benchmarks.gpu_feed_child '<spec json>'   (writes the JSON result to spec["out"])

Every pass delivers the epoch's B3 batches into device memory (``image`` and ``label`` tensors on
the device; ``torch.cuda.synchronize()`` before the clock stops); the labels stay on the device
during the pass and are checked afterwards. Pass 0 includes start-up (workers, CUDA, first
mappings) and is reported apart; the later passes are the steady state.
"""

import json
import multiprocessing
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .scenarios import SCENARIOS, ids_digest

SC = SCENARIOS["B3"]
SHAPE = (224, 224, 3)
ROW = int(np.prod(SHAPE))


def _device(spec: dict[str, Any]) -> torch.device:
    want = spec["device"]
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(want)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _url(spec: dict[str, Any]) -> str:
    return str(Path(spec["dir"]) / f"data-{{000000..{spec['shards'] - 1:06d}}}.tar")


def _files(spec: dict[str, Any]) -> list[str]:
    return [str(Path(spec["dir"]) / f"data-{i:06d}.tar") for i in range(spec["shards"])]


def _sample_type() -> type:
    from .drivers.typed import sample_type

    return sample_type(SC)


def _passes(make: Callable[[], Iterable[Any]], dev: torch.device, passes: int) -> dict[str, Any]:
    """Time ``passes`` full passes into ``dev``; ids digest of each."""
    out: list[dict[str, Any]] = []
    for _ in range(passes):
        labels: list[torch.Tensor] = []
        nbytes = 0
        _sync(dev)
        t0 = time.perf_counter()
        for batch in make():
            img, lab = batch["image"], batch["label"]
            if not isinstance(lab, torch.Tensor):
                lab = torch.as_tensor(lab)
            if img.device != dev:  # DataLoader paths: pinned (or plain) host batch -> device
                img = img.to(dev, non_blocking=True)
            if lab.device != dev:
                lab = lab.to(dev, non_blocking=True)
            labels.append(lab)
            nbytes += img.numel() * img.element_size()
            del img, batch
        _sync(dev)
        seconds = time.perf_counter() - t0
        ids = torch.cat(labels).cpu().numpy() if labels else np.zeros(0, np.int64)
        out.append({"seconds": seconds, "bytes": nbytes, "ids": ids_digest(ids)})
    return {"passes": out}


def run_feed(spec: dict[str, Any], dev: torch.device) -> dict[str, Any]:
    import atdata
    from atdata.torch.feed import feed

    def make() -> Any:
        ds = atdata.Dataset[_sample_type()](_url(spec))  # type: ignore[misc]
        return feed(
            ds, batch_size=spec["batch"], device=dev, threads=spec["param"], drop_last=False
        )

    return _passes(make, dev, spec["passes"])


def run_procs(spec: dict[str, Any], dev: torch.device) -> dict[str, Any]:
    """The library's reader processes: one feed (one registered buffer), one pass per iter."""
    import atdata
    from atdata.torch.feed import feed

    ds = atdata.Dataset[_sample_type()](_url(spec))  # type: ignore[misc]
    f = feed(ds, batch_size=spec["batch"], device=dev, processes=spec["param"], drop_last=False)
    try:
        res = _passes(lambda: f, dev, spec["passes"])
        res["registered"] = bool(f._buffer is not None and f._buffer.registered)
        return res
    finally:
        f.close()


def run_loader(spec: dict[str, Any], dev: torch.device) -> dict[str, Any]:
    import atdata
    import atdata.torch

    ds = atdata.Dataset[_sample_type()](_url(spec))  # type: ignore[misc]
    tds = ds.to_torch(batch_size=spec["batch"], drop_last=False)
    dl = atdata.torch.loader(tds, **_worker_options(spec, dev))
    return _passes(lambda: dl, dev, spec["passes"])


def _worker_options(spec: dict[str, Any], dev: torch.device) -> dict[str, Any]:
    """The DataLoader options both DataLoader rows (ours, webdataset) use alike."""
    w = spec["param"]
    return {
        "num_workers": w,
        "pin_memory": dev.type == "cuda",
        "persistent_workers": w > 0,
        "prefetch_factor": spec["prefetch"] if w > 0 else None,
    }


def run_wds(spec: dict[str, Any], dev: torch.device) -> dict[str, Any]:
    import webdataset as wds

    from .drivers.torch_wds_driver import _Collate, _Decode  # the B7 comparator's own steps

    ds = (
        wds.WebDataset(_url(spec), shardshuffle=False)
        .map(_Decode(SC))
        .batched(spec["batch"], collation_fn=_Collate(SC), partial=True)
    )
    dl = torch.utils.data.DataLoader(ds, batch_size=None, **_worker_options(spec, dev))
    return _passes(lambda: dl, dev, spec["passes"])


def run_shm(spec: dict[str, Any], dev: torch.device) -> dict[str, Any]:
    from .gpu_shm_feed import ShmFeed

    f = ShmFeed(_url(spec), _sample_type(), spec["batch"], SHAPE, workers=spec["param"], device=dev)
    try:
        res = _passes(lambda: f, dev, spec["passes"])
        res["registered"] = f.registered
        return res
    finally:
        f.close()


def _read_files(files: list[str]) -> int:
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    total = 0
    for path in files:
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(view):
                total += n
    return total


def run_read(spec: dict[str, Any], dev: torch.device) -> dict[str, Any]:
    """Page-cache read of the shard bytes by ``param`` processes (no parsing, no device)."""
    files, k = _files(spec), spec["param"]
    out = []
    pool = multiprocessing.get_context("fork").Pool(k) if k > 1 else None
    try:
        if pool is not None:
            pool.map(len, [[]] * k)  # workers up before the clock starts
        for _ in range(spec["passes"]):
            t0 = time.perf_counter()
            if pool is None:
                total = _read_files(files)
            else:
                total = sum(pool.map(_read_files, [files[i::k] for i in range(k)]))
            out.append({"seconds": time.perf_counter() - t0, "bytes": total, "ids": None})
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return {"passes": out}


def run_h2d(spec: dict[str, Any], dev: torch.device) -> dict[str, Any]:
    """One batch's image bytes (64 x 147 KiB = 9.6 MB) copied host -> device, many times."""
    nbytes = spec["batch"] * ROW
    pinned = bool(spec["param"]) and dev.type == "cuda"
    src = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pinned)
    src.fill_(7)
    dst = torch.empty(nbytes, dtype=torch.uint8, device=dev)
    reps = spec["reps"]
    for _ in range(5):
        dst.copy_(src, non_blocking=pinned)
    _sync(dev)
    out = []
    for _ in range(spec["passes"]):
        t0 = time.perf_counter()
        for _ in range(reps):
            dst.copy_(src, non_blocking=pinned)
        _sync(dev)
        out.append({"seconds": time.perf_counter() - t0, "bytes": reps * nbytes, "ids": None})
    return {"passes": out, "pinned": pinned}


HANDLERS = {
    "feed": run_feed,
    "procs": run_procs,
    "loader": run_loader,
    "wds": run_wds,
    "shm": run_shm,
    "read": run_read,
    "h2d": run_h2d,
}


def main() -> None:
    spec = json.loads(sys.argv[1])
    dev = _device(spec)
    t0 = time.perf_counter()
    res = HANDLERS[spec["kind"]](spec, dev)
    res["wall_s"] = time.perf_counter() - t0
    res["device"] = str(dev)
    try:  # a ceiling that never touched the device still reports what it was asked for
        res["device_name"] = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    except (AssertionError, RuntimeError) as exc:
        res["device_name"] = f"{dev} unavailable: {exc}"[:120]
    Path(spec["out"]).write_text(json.dumps(res))


if __name__ == "__main__":
    main()
