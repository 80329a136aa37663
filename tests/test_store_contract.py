"""One contract for every data store: the same behaviour on local disk and on S3 (moto and rclone
on loopback). Store-specific behaviour (multipart parts, dangling uploads, directory pruning) stays
in test_s3_store.py and index/test_disk_store.py."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import atdata
from atdata.errors import AtdataWarning, StoreError
from atdata.index import Index
from atdata.index import datasets as ds_ops
from atdata.index.providers.sqlite import SQLiteProvider
from atdata.shards.info import ShardInfo
from atdata.shards.offsets import OFFSETS_SUFFIX
from atdata.shards.writer import ShardWriter
from atdata.sources import open_source
from atdata.stores import DataStore, LocalDiskStore

pytest_plugins = ["s3_backends"]

W1 = "0123456789abcdef"
W2 = "fedcba9876543210"


@atdata.packable
class Reading:
    sensor: str
    value: float


def make_samples(n: int) -> list[Reading]:
    return [Reading(f"s{i}", i / 2) for i in range(n)]


@dataclass
class StoreUnderTest:
    """A store, and a way to look at and damage what it holds without going through it."""

    kind: str
    store: DataStore
    root_url: str  # every URL the store makes starts with this, then '/<name>/...'
    outside_url: str  # a URL of the same scheme outside the store
    _keys: Callable[[], list[str]]  # everything stored, relative to the root
    read: Callable[[str], bytes]  # by URL
    overwrite: Callable[[str, bytes], None]  # by URL
    remove: Callable[[str], None]  # by URL

    def keys(self, *, hidden: bool = True) -> list[str]:
        found = self._keys()
        if not hidden:
            found = [k for k in found if not k.rsplit("/", 1)[-1].startswith(".")]
        return sorted(found)


def _disk(tmp_path: Path) -> StoreUnderTest:
    root = (tmp_path / "store").resolve()
    root.mkdir()

    def keys() -> list[str]:
        return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]

    return StoreUnderTest(
        "disk",
        LocalDiskStore(root),
        str(root),
        str(tmp_path / "elsewhere" / "x" / "1" / "x-000000.tar"),
        keys,
        _read,
        lambda url, data: Path(url).write_bytes(data),
        os.remove,
    )


def _s3(request: pytest.FixtureRequest, server: str) -> StoreUnderTest:
    from atdata.stores.s3 import MIN_PART_SIZE, S3DataStore
    from s3_backends import make_s3_backend

    s3 = make_s3_backend(request, server)
    store = S3DataStore(s3.bucket, "datasets", config=s3.config, part_size=MIN_PART_SIZE)

    def key(url: str) -> str:
        return url.removeprefix(f"s3://{s3.bucket}/")

    return StoreUnderTest(
        server,
        store,
        f"s3://{s3.bucket}/datasets",
        f"s3://{s3.bucket}/other/x/1/x-000000.tar",
        lambda: [k.removeprefix("datasets/") for k in s3.keys("datasets/")],
        lambda url: s3.client.get_object(Bucket=s3.bucket, Key=key(url))["Body"].read(),
        lambda url, data: s3.client.put_object(Bucket=s3.bucket, Key=key(url), Body=data),
        lambda url: s3.client.delete_object(Bucket=s3.bucket, Key=key(url)),
    )


@pytest.fixture(params=["disk", "moto", "rclone"])
def sut(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreUnderTest]:
    if request.param == "disk":
        yield _disk(tmp_path)
    else:
        yield _s3(request, request.param)


def _write(sut: StoreUnderTest, name: str, version: int, write_id: str, n: int) -> list[ShardInfo]:
    pattern = sut.store.shard_pattern(name, version, write_id)
    with ShardWriter(pattern, maxcount=2, sink_factory=sut.store.sink_factory) as writer:
        writer.write_all(make_samples(n))
    return list(writer.shards)


def _read(url: str) -> bytes:
    with open_source(url).open() as stream:
        return stream.read()


def test_shard_urls_follow_the_layout_and_the_store_owns_only_its_own(
    sut: StoreUnderTest,
) -> None:
    store = sut.store
    assert store.shard_pattern("team/frames", 2, W1) == (
        f"{sut.root_url}/team/frames/2/{W1}/frames-%06d.tar"
    )
    assert store.owns(f"{sut.root_url}/x/1/x-000000.tar")
    assert not store.owns(sut.outside_url)
    assert not store.owns(sut.root_url)
    with pytest.raises(StoreError, match="outside"):
        store.open_sink(sut.outside_url)
    for bad_name in ("../etc", "/abs", "Upper", "a//b"):
        with pytest.raises(ValueError):
            store.shard_pattern(bad_name, 1, W1)
    for bad_id in ("../x", "0123456789ABCDEF", ""):
        with pytest.raises(ValueError, match="write id"):
            store.shard_pattern("x", 1, bad_id)
    with pytest.raises(ValueError):
        store.shard_pattern("x", 0, W1)


def test_written_shards_read_back_with_their_checksums(sut: StoreUnderTest) -> None:
    records = _write(sut, "team/frames", 1, W1, 5)
    assert [r.count for r in records] == [2, 2, 1]
    names = [f"team/frames/1/{W1}/frames-00000{i}.tar" for i in range(3)]
    assert sut.keys() == sorted(names + [n + OFFSETS_SUFFIX for n in names])
    for record, name in zip(records, names, strict=True):
        assert record.url == f"{sut.root_url}/{name}"
        data = sut.read(record.url)
        assert len(data) == record.size
        assert hashlib.sha256(data).hexdigest() == record.checksum.digest
    assert sut.store.verify(records) == []


def test_a_shard_appears_on_commit_and_an_abort_leaves_nothing(sut: StoreUnderTest) -> None:
    location = sut.store.shard_pattern("atomic", 1, W1) % 0
    sink = sut.store.open_sink(location)
    sink.write(b"x" * 70_000)
    assert sut.keys(hidden=False) == []  # nothing visible before the commit
    sink.abort()
    assert sut.keys() == []  # no temporary left either
    sink = sut.store.open_sink(location)
    sink.write(b"y" * 1000)
    sink.commit()
    assert sut.keys() == [f"atomic/1/{W1}/atomic-000000.tar"]
    assert sut.read(location) == b"y" * 1000


def test_a_commit_never_replaces_a_shard_already_there(sut: StoreUnderTest) -> None:
    if sut.kind == "rclone":  # DataStore.open_sink promises this "where the storage can tell"
        pytest.skip("rclone serve s3 ignores If-None-Match, so no client can tell")
    location = sut.store.shard_pattern("once", 1, W1) % 0
    first = sut.store.open_sink(location)
    first.write(b"first")
    first.commit()
    second = sut.store.open_sink(location)
    second.write(b"second")
    with pytest.raises(StoreError, match="already exists"):
        second.commit()
    assert sut.read(location) == b"first"
    assert sut.keys() == [f"once/1/{W1}/once-000000.tar"]


def test_verify_reports_size_digest_and_missing_shards(sut: StoreUnderTest) -> None:
    records = _write(sut, "checked", 1, W1, 6)
    assert sut.store.verify(records) == []
    sut.overwrite(records[0].url, sut.read(records[0].url) + b"\0" * 512)
    damaged = bytearray(sut.read(records[1].url))
    damaged[-1100] ^= 0xFF
    sut.overwrite(records[1].url, bytes(damaged))
    sut.remove(records[2].url)
    problems = sut.store.verify(records)
    assert [(p.url, p.problem.split()[0]) for p in problems] == [
        (records[0].url, "size"),
        (records[1].url, "sha256"),
        (records[2].url, "cannot"),
    ]


def test_delete_shards_removes_only_what_the_entry_owns(sut: StoreUnderTest) -> None:
    mine = _write(sut, "team/x", 1, W1, 4)
    other_version = _write(sut, "team/x", 2, W1, 2)
    other_name = _write(sut, "team/y", 1, W1, 2)
    urls = [r.url for r in mine]
    foreign = [other_version[0].url, other_name[0].url, sut.outside_url]
    with pytest.warns(AtdataWarning) as caught:
        sut.store.delete_shards("team/x", 1, urls + foreign)
    assert sorted(str(w.message).split(" did not delete ")[1].split("'")[1] for w in caught) == (
        sorted(foreign)
    )
    left = sut.keys()
    assert not [k for k in left if k.startswith("team/x/1/")]  # shards and sidecars
    assert len([k for k in left if k.startswith("team/x/2/")]) == 2
    assert len([k for k in left if k.startswith("team/y/1/")]) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sut.store.delete_shards("team/x", 1, urls)  # idempotent, and silent


def test_delete_write_removes_one_write(sut: StoreUnderTest) -> None:
    for version, write_id in ((1, W1), (1, W2), (2, W1)):
        _write(sut, "team/x", version, write_id, 2)
    sut.store.delete_write("team/x", 1, W1)
    sut.store.delete_write("team/x", 1, W1)  # idempotent
    assert {k.rsplit("/", 1)[0] for k in sut.keys()} == {f"team/x/1/{W2}", f"team/x/2/{W1}"}
    sut.store.delete_write("team/x", 1, W2)
    sut.store.delete_write("team/x", 2, W1)
    assert sut.keys() == []
    for bad in (("../x", 1, W1), ("x", 0, W1), ("x", 1, "..")):
        with pytest.raises(ValueError):
            sut.store.delete_write(*bad)


def test_gc_deletes_the_shards_of_an_abandoned_write(sut: StoreUnderTest, tmp_path: Path) -> None:
    index = Index(SQLiteProvider(tmp_path / "index.db"), sut.store)
    kept = index.write(make_samples(3), "kept")
    repo = index.repository()
    version, write_id = ds_ops.reserve_version(repo, "orphan")
    _write(sut, "orphan", version, write_id, 3)  # a writer that died before registering them
    assert index.gc() == []  # its writer (this process) is alive and the write is young
    with repo.provider.transaction() as tx:
        record = tx.get("pending", "orphan#0000000001")
        assert record is not None
        tx.put("pending", "orphan#0000000001", {**record, "pid": 2**22 + 12345})  # no such pid
    assert index.gc() == ["local:orphan@1"]
    assert [k for k in sut.keys() if not k.startswith("kept/")] == []
    assert sut.store.verify(list(kept.shards)) == []  # the registered dataset is untouched
    index.close()
