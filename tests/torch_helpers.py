"""Sample types and datasets for the torch tests, at module level so that spawn-started DataLoader
workers can import them (pickled by reference)."""

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

import atdata


@atdata.packable
class Item:
    idx: int
    vec: NDArray[np.float32]
    name: str


def items(start: int, stop: int) -> list[Item]:
    return [Item(i, np.full(4, i, dtype=np.float32), f"item-{i}") for i in range(start, stop)]


def write_shards(directory: Path, sizes: list[int]) -> atdata.Dataset[Item]:
    """Shards of the given sizes holding samples 0..sum(sizes)-1 in storage order."""
    start = 0
    for n, size in enumerate(sizes):
        atdata.write_samples(
            items(start, start + size), str(directory / f"part{n:03d}-%06d.tar"), maxcount=size
        )
        start += size
    return atdata.Dataset[Item](str(directory / "part*.tar"))


def keep_even(item: Item) -> bool:
    return item.idx % 2 == 0


def ids(batches: object) -> list[list[int]]:
    """The sample ids of each batch (``idx`` tensors or lists)."""
    out = []
    for batch in batches:  # type: ignore[attr-defined]
        idx = batch["idx"]
        out.append([int(i) for i in idx])
    return out
