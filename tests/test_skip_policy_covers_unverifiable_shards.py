"""``on_error="skip"``/``"warn"`` skip a whole shard whose bytes fail their recorded sha256 (or
that cannot be opened), on every iteration path: local shards, shards from the cache, remote
shards read by range; ordered and shuffled, with and without batches, and through torch. Under
``"raise"`` the same read raises, and random access (``ds[i]``) always raises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atdata import Dataset, write_samples
from atdata.errors import AtdataWarning, IntegrityError
from atdata.sample import packable
from atdata.sources.cache import ShardCache
from http_server import FileServer

SIZES = [5, 7, 4]  # samples 0..15 in three shards; the middle one (5..11) is the bad one
BAD = set(range(5, 12))
GOOD = [i for i in range(sum(SIZES)) if i not in BAD]


pytestmark = pytest.mark.usefixtures("private_verify_memo")


@packable
class Row:
    i: int
    v: np.ndarray


def _write(root: Path) -> list[tuple[Path, str]]:
    """Three shards (path, sha256) in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    out = []
    start = 0
    for n, size in enumerate(SIZES):
        rows = [Row(i=i, v=np.full(3, i, dtype=np.float32)) for i in range(start, start + size)]
        (info,) = write_samples(rows, str(root / f"s{n}-%06d.tar"), maxcount=size).shard_infos
        out.append((Path(info.url), info.checksum.digest))
        start += size
    return out


def _checksums(urls: list[str], shas: list[str]) -> dict[str, str]:
    sums = dict(zip(urls, shas, strict=True))
    sums[urls[1]] = "0" * 64  # the middle shard's bytes do not match its record
    return sums


def _local(tmp_path: Path, on_error: Any) -> Dataset[Row]:
    shards = _write(tmp_path / "shards")
    urls = [str(p) for p, _ in shards]
    return Dataset(urls, Row, checksums=_checksums(urls, [s for _, s in shards]), on_error=on_error)


def _remote(server: FileServer, tmp_path: Path, on_error: Any, cached: bool) -> Dataset[Row]:
    shards = _write(server.root)
    urls = [server.url_for(p.name) for p, _ in shards]
    cache = ShardCache(tmp_path / "cache") if cached else None
    return Dataset(
        urls, Row, checksums=_checksums(urls, [s for _, s in shards]), on_error=on_error,
        cache=cache,
    )  # fmt: skip


def _ids(ds: Dataset[Row], how: str, batch_size: int | None) -> list[int]:
    it = ds.ordered(batch_size=batch_size) if how == "ordered" else ds.shuffled(
        seed=1, batch_size=batch_size
    )  # fmt: skip
    if batch_size is None:
        return [r.i for r in it]
    return [int(i) for b in it for i in b.i]


MODES = [("ordered", None), ("ordered", 3), ("shuffled", None), ("shuffled", 3)]


@pytest.mark.parametrize(("how", "batch_size"), MODES)
def test_a_local_shard_failing_its_checksum_is_skipped(
    tmp_path: Path, how: str, batch_size: int | None
) -> None:
    ds = _local(tmp_path, "skip")
    got = _ids(ds, how, batch_size)
    assert sorted(got) == GOOD
    if how == "ordered":
        assert got == GOOD


@pytest.mark.parametrize(("how", "batch_size"), MODES)
def test_warn_names_the_shard_and_skips_it(
    tmp_path: Path, how: str, batch_size: int | None
) -> None:
    ds = _local(tmp_path, "warn")
    with pytest.warns(AtdataWarning, match="s1-000000.tar") as caught:
        got = _ids(ds, how, batch_size)
    assert sorted(got) == GOOD
    assert sum("s1-000000.tar" in str(w.message) for w in caught) >= 1


@pytest.mark.parametrize(("how", "batch_size"), MODES)
def test_raise_still_raises(tmp_path: Path, how: str, batch_size: int | None) -> None:
    ds = _local(tmp_path, "raise")
    with pytest.raises(IntegrityError) as err:
        _ids(ds, how, batch_size)
    assert str(err.value.shard).endswith("s1-000000.tar")


def test_random_access_raises_whatever_the_policy(tmp_path: Path) -> None:
    ds = _local(tmp_path, "skip")
    assert ds[0].i == 0
    with pytest.raises(IntegrityError):
        ds[6]
    assert ds[13].i == 13


def test_positions_after_a_skipped_shard_resume_exactly(tmp_path: Path) -> None:
    ds = _local(tmp_path, "skip")
    loader = ds.ordered(batch_size=2)
    it = iter(loader)
    first = [int(i) for i in next(it).i]
    assert first == [0, 1]
    state = loader.state_dict()
    rest = [int(i) for b in it for i in b.i]
    again = ds.ordered(batch_size=2)
    again.load_state_dict(state)
    assert [int(i) for b in again for i in b.i] == rest
    assert first + rest == GOOD
    # start= past the bad shard, and at a position inside it
    assert [r.i for r in ds.ordered(start=12)] == [12, 13, 14, 15]
    assert [r.i for r in ds.ordered(start=6)] == [12, 13, 14, 15]


@pytest.mark.parametrize("cached", [True, False], ids=["cache", "no-cache"])
@pytest.mark.parametrize(("how", "batch_size"), MODES)
def test_a_remote_shard_failing_its_checksum_is_skipped(
    http_server: FileServer, tmp_path: Path, cached: bool, how: str, batch_size: int | None
) -> None:
    ds = _remote(http_server, tmp_path, "skip", cached)
    got = _ids(ds, how, batch_size)
    assert sorted(got) == GOOD
    strict = _remote(http_server, tmp_path / "again", "raise", cached)
    with pytest.raises(IntegrityError):
        _ids(strict, how, batch_size)


@pytest.mark.parametrize("shuffle", [False, True])
def test_torch_skips_the_shard_too(tmp_path: Path, shuffle: bool) -> None:
    pytest.importorskip("torch")
    ds = _local(tmp_path, "skip")
    tds = ds.to_torch(batch_size=3, shuffle=shuffle, drop_last=False)
    got = [int(i) for batch in tds for i in batch["i"]]
    assert sorted(got) == GOOD
    strict = _local(tmp_path / "strict", "raise")
    with pytest.raises(IntegrityError):
        list(strict.to_torch(batch_size=3, shuffle=shuffle, drop_last=False))


@pytest.mark.parametrize("seed", [None, 3])
def test_untyped_datasets_skip_the_shard_too(tmp_path: Path, seed: int | None) -> None:
    shards = _write(tmp_path / "shards")
    urls = [str(p) for p, _ in shards]
    sums = _checksums(urls, [s for _, s in shards])
    ds: Dataset[Any] = Dataset(urls, checksums=sums, on_error="skip")
    loader = ds.ordered() if seed is None else ds.shuffled(seed=seed)
    assert sorted(int(d["i"]) for d in loader) == GOOD
    with pytest.raises(IntegrityError):
        list(Dataset(urls, checksums=sums).ordered())
