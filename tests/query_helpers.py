"""Shared pieces of the query tests: a sample type with scalar fields and an array, random rows,
and a source factory that counts the reads of each shard's bytes (not of its sidecars)."""

import os
from typing import Any

import numpy as np
from numpy.typing import NDArray

import atdata
from atdata.sources import open_source


@atdata.packable
class Row:
    label: int
    score: float
    id: str
    flag: bool
    note: str | None
    emb: NDArray[np.float32]


def make_rows(n: int, seed: int = 0, *, sort: bool = False) -> list[Row]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 20, n)
    if sort:
        labels = np.sort(labels)
    notes = ["a", "b", "zz", None]
    return [
        Row(
            label=int(labels[i]),
            score=float(np.round(rng.random(), 3)),
            id=f"id{i:05d}",
            flag=bool(rng.random() < 0.3),
            note=notes[int(rng.integers(0, 4))],
            emb=rng.random(8).astype(np.float32),
        )
        for i in range(n)
    ]


class _Counted:
    """A shard source that counts reads of the shard itself (sidecar reads are not counted)."""

    def __init__(self, inner: Any, counts: dict[str, int]) -> None:
        self._inner = inner
        self._counts = counts
        self.url = inner.url

    def _hit(self) -> None:
        name = os.path.basename(self.url)
        self._counts[name] = self._counts.get(name, 0) + 1

    def local_path(self) -> str | None:
        self._hit()
        return self._inner.local_path()  # type: ignore[no-any-return]

    def peek_local_path(self) -> str | None:
        return self._inner.local_path()  # type: ignore[no-any-return]

    def open(self) -> Any:
        self._hit()
        return self._inner.open()

    def read_range(self, start: int, length: int) -> bytes:
        self._hit()
        return self._inner.read_range(start, length)  # type: ignore[no-any-return]

    def read_sidecar(self, suffix: str) -> bytes | None:
        return self._inner.read_sidecar(suffix)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class CountingOpener:
    """``source_factory`` for a Dataset: ``opened`` maps shard basenames to data reads."""

    def __init__(self) -> None:
        self.opened: dict[str, int] = {}

    def __call__(self, url: str) -> Any:
        return _Counted(open_source(url), self.opened)
