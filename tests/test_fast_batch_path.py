"""The batch fast path: reading through the offset index, column-wise validation, reused arrays."""

import os
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest

from atdata import Dataset, NDArray, SchemaError, Shape, packable, write_samples
from atdata.batch import ArrayPool
from atdata.shards.offsets import OFFSETS_SUFFIX, OffsetIndex


@packable
class Big:
    idx: int
    data: Annotated[NDArray[np.float32], Shape(256, 1024)]  # 1 MiB: batches come from the pool


@packable
class Small:
    idx: int
    name: str
    vec: Annotated[NDArray[np.float32], Shape(8)]


def _big(tmp_path: Path, n: int = 12) -> str:
    write_samples(
        (Big(i, np.full((256, 1024), i, np.float32)) for i in range(n)),
        str(tmp_path / "big-%06d.tar"),
        maxcount=5,
    )
    return str(tmp_path / "big-*.tar")


def _small(tmp_path: Path, n: int = 300) -> str:
    write_samples(
        (Small(i, f"s{i}", np.arange(8, dtype=np.float32) + i) for i in range(n)),
        str(tmp_path / "small-%06d.tar"),
        maxcount=100,
    )
    return str(tmp_path / "small-*.tar")


def test_batches_kept_by_the_caller_are_never_overwritten(tmp_path: Path) -> None:
    ds = Dataset[Big](_big(tmp_path))
    kept = list(ds.ordered(batch_size=2))
    assert [b.idx for b in kept] == [[2 * k, 2 * k + 1] for k in range(6)]
    for b in kept:
        for row, idx in zip(b.data, b.idx, strict=True):
            assert (row == idx).all()
    views = [b.data[0] for b in ds.ordered(batch_size=2)]  # only a view of each batch survives
    assert [int(v[0, 0]) for v in views] == [0, 2, 4, 6, 8, 10]


def test_a_released_batch_array_is_reused_and_a_held_one_is_not() -> None:
    pool = ArrayPool()
    first = pool.empty((4, 1 << 18), np.dtype("float32"))
    held = pool.empty((4, 1 << 18), np.dtype("float32"))
    assert held is not first  # `first` is still referenced here
    first_address = first.ctypes.data
    del first
    again = pool.empty((4, 1 << 18), np.dtype("float32"))
    assert again.ctypes.data == first_address
    assert again is not held


def test_a_stale_offset_index_is_noticed_and_the_shard_is_parsed(tmp_path: Path) -> None:
    pattern = _small(tmp_path)
    shard = tmp_path / "small-000000.tar"
    # the sidecar of another shard (same layout, other keys): sizes match but it is not ours
    other = tmp_path / "small-000001.tar"
    os.replace(str(other) + OFFSETS_SUFFIX, str(shard) + OFFSETS_SUFFIX)
    index = OffsetIndex.from_bytes((Path(str(shard) + OFFSETS_SUFFIX)).read_bytes(), "x")
    index.shard_size += 512  # now it cannot describe this file
    Path(str(shard) + OFFSETS_SUFFIX).write_bytes(index.to_bytes())
    ds = Dataset[Small](str(shard))
    idx = [i for b in ds.ordered(batch_size=32) for i in b.idx]
    assert idx == list(range(100))
    del pattern


def test_an_offset_index_pointing_at_wrong_sizes_falls_back_to_parsing(tmp_path: Path) -> None:
    _small(tmp_path)
    shard = tmp_path / "small-000000.tar"
    side = Path(str(shard) + OFFSETS_SUFFIX)
    index = OffsetIndex.from_bytes(side.read_bytes(), "x")
    sizes = index.sizes.copy()
    sizes[50] += 1
    side.write_bytes(
        OffsetIndex(index.keys, index.header_offsets, sizes, index.shard_size).to_bytes()
    )
    ds = Dataset[Small](str(shard))
    batches = list(ds.ordered(batch_size=32))
    assert [i for b in batches for i in b.idx] == list(range(100))
    assert all(b.vec.shape == (len(b), 8) for b in batches)


def test_a_bad_sample_in_a_batch_is_named_and_the_rest_kept_under_skip(tmp_path: Path) -> None:
    @packable
    class Loose:
        idx: int
        name: str
        vec: NDArray[np.float32]

    write_samples(
        [Loose(i, f"s{i}", np.zeros(3 if i != 5 else 4, np.float32)) for i in range(10)],
        str(tmp_path / "loose-%06d.tar"),
    )
    strict = Dataset[Small](str(tmp_path / "loose-000000.tar"))
    with pytest.raises(SchemaError, match=r"\$\.vec") as info:
        list(strict.ordered(batch_size=4))
    assert "loose-000000.tar" in str(info.value)
    skipping = Dataset[Small](str(tmp_path / "loose-000000.tar"), on_error="skip")
    assert skipping.head(1) == []  # every sample has the wrong shape for Small: all skipped
    ragged = Dataset[Loose](str(tmp_path / "loose-000000.tar"))
    (batch,) = list(ragged.ordered(batch_size=10))
    assert isinstance(batch.vec, list) and [len(v) for v in batch.vec][4:7] == [3, 4, 3]


def test_a_glob_that_also_matches_the_sidecars_names_only_the_shards(tmp_path: Path) -> None:
    _small(tmp_path)
    ds = Dataset[Small](str(tmp_path / "small-*"))  # matches x.tar and x.tar.idx
    assert [Path(u).name for u in ds.urls] == [f"small-{i:06d}.tar" for i in range(3)]
    assert len(ds) == 300
