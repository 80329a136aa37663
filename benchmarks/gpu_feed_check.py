"""CUDA checks of ``feed(processes=N, device="cuda")`` for the GPU machine (no pytest there).

    python -m benchmarks.gpu_feed_check [cpu]     (cpu: a dry run of the same checks here)

Small typed shards in a temp dir: the device batches equal the threaded feed's host batches
(shuffled, two epochs, batches held while slots are reused), the buffer is registered (or the
fallback warned), the readers are gone after ``break``, and ``close()`` unregisters. Prints
``CHECK OK`` or raises.
"""

import gc
import logging
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np
import torch

import atdata
from atdata import NDArray
from atdata.torch.feed import feed


@atdata.packable
class Img:
    image: Annotated[NDArray[np.uint8], atdata.Shape(32, 32, 3)]
    label: int


def _content(batches: list[dict[str, torch.Tensor]]) -> list[tuple[list[int], int]]:
    return [(b["label"].tolist(), int(b["image"].sum().item())) for b in batches]


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    device = "cpu" if sys.argv[1:] == ["cpu"] else "cuda"
    assert device == "cpu" or torch.cuda.is_available(), "no CUDA here"
    d = Path(tempfile.mkdtemp(prefix="atdata-feedcheck-"))
    for n in range(4):
        samples = [
            Img(np.full((32, 32, 3), i % 251, np.uint8), i) for i in range(n * 300, n * 300 + 300)
        ]
        atdata.write_samples(samples, str(d / f"s{n}-%06d.tar"), maxcount=300)
    ds = atdata.Dataset[Img](str(d / "s*.tar"))
    plan = {"shuffle": True, "seed": 7, "drop_last": False}
    f = feed(ds, 32, device=device, processes=3, **plan)
    for epoch in (0, 1):
        ref = feed(ds, 32, threads=1, device="cpu", **plan)
        ref.set_epoch(epoch)
        f.set_epoch(epoch)
        held = list(f)
        if device == "cuda":
            torch.cuda.synchronize()
        assert all(b["image"].device.type == b["label"].device.type == device for b in held)
        assert _content(held) == _content(list(ref)), f"epoch {epoch}: batches differ"
        for b in held:
            assert (b["image"][:, 0, 0, 0].long() == b["label"] % 251).all()
    buf = f._buffer
    assert buf is not None
    print("registered:", buf.registered, "slot bytes:", buf.slot_bytes)
    it = iter(f)
    next(it)
    pids = f.reader_pids
    it.close()
    gc.collect()
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", pid
    f.close()
    print("CHECK OK")


if __name__ == "__main__":
    main()
