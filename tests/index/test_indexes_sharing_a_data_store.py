"""Two indexes over one data directory never touch each other's shards.

The default ``Index()`` (SQLite at ``ATDATA_HOME/index.db``, shards in ``ATDATA_HOME/data``) and a
second index with its own records (another SQLite file, Redis or PostgreSQL) over the same
``ATDATA_HOME/data`` both write ``mnist@1``. Each must read back its own samples, and removing,
failing or crashing in one must leave the other's shards whole.
"""

import multiprocessing
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from index_helpers import make_samples, open_index
from index_types import Point

from atdata.errors import StoreError
from atdata.index import Index, Provider
from atdata.stores import LocalDiskStore


@pytest.fixture
def first(_atdata_home: Path) -> Iterator[Index]:
    """The default index: ``Index()`` over ``ATDATA_HOME``."""
    idx = Index()
    yield idx
    idx.close()


@pytest.fixture
def second(provider: Provider, _atdata_home: Path) -> Index:
    """Another index (sqlite: another file; redis; postgres) over the same ``ATDATA_HOME/data``."""
    return Index(provider, LocalDiskStore(_atdata_home / "data"))


def _xs(index: Index, ref: str) -> list[int]:
    return [p.x for p in index.load(ref, Point)]


def _assert_whole(index: Index, ref: str, xs: list[int]) -> None:
    assert _xs(index, ref) == xs
    assert index.verify(ref) == []


def test_both_keep_their_own_samples_for_the_same_name_and_version(
    first: Index, second: Index
) -> None:
    a = first.write(make_samples(5, start=0), "mnist", maxcount=2)
    b = second.write(make_samples(5, start=100), "mnist", maxcount=2)
    assert (a.version, b.version) == (1, 1)  # two indexes, each with its own mnist@1
    assert not set(a.urls) & set(b.urls)
    _assert_whole(first, "mnist@1", [0, 1, 2, 3, 4])
    _assert_whole(second, "mnist@1", [100, 101, 102, 103, 104])


def test_removing_from_one_leaves_the_other_whole(first: Index, second: Index) -> None:
    first.write(make_samples(3, start=0), "team/mnist")
    b = second.write(make_samples(3, start=100), "team/mnist")
    first.remove("team/mnist@1")
    assert first.gc(pending_age=timedelta(0)) == []
    _assert_whole(second, "team/mnist@1", [100, 101, 102])
    assert all(os.path.exists(u + ".idx") for u in b.urls)  # sidecars too
    second.remove("team/mnist@1")
    data = Path(b.urls[0]).parents[4]
    assert data.name == "data" and not any(data.iterdir())  # all pruned once both are gone


def test_a_failed_write_in_one_leaves_the_other_whole(first: Index, second: Index) -> None:
    second.write(make_samples(4, start=100), "mnist", maxcount=2)

    def failing() -> Iterator[Point]:
        yield from make_samples(5)
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError, match="producer failed"):
        first.write(failing(), "mnist", maxcount=2)  # mnist@1 in the first index: abandoned
    _assert_whole(second, "mnist@1", [100, 101, 102, 103])


def _crash_while_writing(home: str) -> None:
    os.environ["ATDATA_HOME"] = home

    def samples() -> Iterator[Point]:
        yield from make_samples(5)
        # shards are committed on the writer's background thread: die once they are in the store
        write_dirs = Path(home) / "data" / "mnist" / "1"
        deadline = time.monotonic() + 60
        while len(list(write_dirs.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        os._exit(3)  # the writer dies with shards of mnist@1 in the store and a pending mark

    Index().write(samples(), "mnist", maxcount=2)


def test_gc_of_a_crashed_write_in_one_leaves_the_other_whole(
    first: Index, second: Index, _atdata_home: Path
) -> None:
    second.write(make_samples(4, start=100), "mnist", maxcount=2)
    child = multiprocessing.get_context("spawn").Process(
        target=_crash_while_writing, args=(str(_atdata_home),)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 3
    data = _atdata_home / "data"
    assert len(list((data / "mnist" / "1").iterdir())) == 2  # two writes of mnist@1
    assert first.gc(pending_age=timedelta(0)) == ["local:mnist@1"]
    _assert_whole(second, "mnist@1", [100, 101, 102, 103])
    assert len(list((data / "mnist" / "1").iterdir())) == 1  # the crashed write is gone


def test_a_store_sink_never_replaces_an_existing_file(tmp_path: Path) -> None:
    store = LocalDiskStore(tmp_path)
    target = tmp_path / "x" / "1" / "0123456789abcdef" / "x-000000.tar"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"theirs")
    sink = store.open_sink(str(target))
    sink.write(b"ours")
    with pytest.raises(StoreError, match="already exists and was not overwritten"):
        sink.commit()
    assert target.read_bytes() == b"theirs"
    assert os.listdir(target.parent) == ["x-000000.tar"]  # no temporary file left
    fresh = store.open_sink(str(target.with_name("x-000001.tar")))
    fresh.write(b"ours")
    fresh.commit()
    assert target.with_name("x-000001.tar").read_bytes() == b"ours"


def test_removal_deletes_only_urls_inside_the_entrys_own_location(tmp_path: Path) -> None:
    store = LocalDiskStore(tmp_path / "data")
    theirs = tmp_path / "data" / "b" / "1" / "0123456789abcdef" / "b-000000.tar"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"b's shard")
    outside = tmp_path / "outside.tar"
    outside.write_bytes(b"not the store's")
    with pytest.warns(UserWarning, match="did not delete") as caught:
        store.delete_shards("a", 1, [str(theirs), str(outside)])  # a forged trash record
    assert len(caught) == 2
    assert theirs.read_bytes() == b"b's shard" and outside.exists()


def test_versions_written_before_write_ids_are_still_removed(
    tmp_path: Path, provider: Provider
) -> None:
    """An entry and a pending mark in the layout of earlier releases: shards right in
    ``<name>/<version>/``; removing and gc delete those files, never write-id directories."""
    data = tmp_path / "data"
    index = open_index(lambda: provider, data)
    old = index.write(make_samples(3), "old")
    legacy_dir = data / "old" / "1"
    for url in old.urls:  # move the shards to where releases without write ids put them
        for suffix in ("", ".idx", ".manifest"):
            os.replace(url + suffix, legacy_dir / (Path(url).name + suffix))
    Path(old.urls[0]).parent.rmdir()
    old_record = index.repository().provider.get("dataset", "old#0000000001")
    assert old_record is not None
    for shard in old_record["shards"]:
        shard["url"] = str(legacy_dir / Path(shard["url"]).name)
    with index.repository().provider.transaction() as tx:
        tx.put("dataset", "old#0000000001", old_record)
    assert [p.x for p in index.load("old@1", Point)] == [0, 1, 2]
    other = legacy_dir / "fedcba9876543210" / "old-000000.tar"  # another index's write
    other.parent.mkdir()
    other.write_bytes(b"another index's shard")
    index.remove("old@1")
    assert sorted(p.name for p in legacy_dir.iterdir()) == ["fedcba9876543210"]
    assert other.read_bytes() == b"another index's shard"

    (legacy_dir / "old-000000.tar").write_bytes(b"left by a crashed write")
    with index.repository().provider.transaction() as tx:  # a pending mark without a write id
        tx.put("pending", "old#0000000002", {"name": "old", "version": 2, "created_at": "x"})
        tx.put("pending", "old#0000000001", {"name": "old", "version": 1, "created_at": "x"})
    assert sorted(index.gc()) == ["local:old@1", "local:old@2"]
    assert sorted(p.name for p in legacy_dir.iterdir()) == ["fedcba9876543210"]
    assert other.read_bytes() == b"another index's shard"
