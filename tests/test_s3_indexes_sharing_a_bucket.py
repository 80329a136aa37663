"""Two indexes over one S3 bucket and prefix never touch each other's objects (moto, rclone).

Each index has its own SQLite records; both write ``frames@1`` into the same bucket and prefix.
Each reads back its own samples; removing the entry from one (or a failed write in one) leaves
the other's shards and sidecars whole. A store sink never replaces an existing object on a
server that honours ``If-None-Match: *`` (moto here, like AWS S3); ``rclone serve s3`` ignores
that header, and there the write id in every key is what keeps writers apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import atdata
from atdata import Index
from atdata.errors import StoreError
from atdata.index.providers.sqlite import SQLiteProvider
from atdata.stores.s3 import MIN_PART_SIZE, S3DataStore

if TYPE_CHECKING:
    from s3_backends import S3Backend

pytestmark = pytest.mark.services
pytest_plugins = ["s3_backends"]  # the `s3` fixture: moto and rclone on loopback

PREFIX = "datasets"


@atdata.packable
class Tick:
    i: int


def _ticks(n: int, start: int) -> list[Tick]:
    return [Tick(i) for i in range(start, start + n)]


def _index(s3: S3Backend, path: Path) -> Index:
    store = S3DataStore(s3.bucket, PREFIX, config=s3.config, part_size=MIN_PART_SIZE)
    return Index(SQLiteProvider(path), data_store=store)


@pytest.fixture
def pair(s3: S3Backend, tmp_path: Path) -> Iterator[tuple[Index, Index]]:
    first, second = _index(s3, tmp_path / "a.db"), _index(s3, tmp_path / "b.db")
    yield first, second
    first.close()
    second.close()


def _ids(index: Index, ref: str) -> list[int]:
    return [t.i for t in index.load(ref, Tick)]


def test_both_keep_their_own_samples_and_removal_leaves_the_other(
    s3: S3Backend, pair: tuple[Index, Index]
) -> None:
    first, second = pair
    a = first.write(_ticks(5, 0), "frames", maxcount=2)
    b = second.write(_ticks(5, 100), "frames", maxcount=2)
    assert (a.version, b.version) == (1, 1)
    assert _ids(first, "frames@1") == [0, 1, 2, 3, 4]
    assert _ids(second, "frames@1") == [100, 101, 102, 103, 104]

    first.remove("frames@1")
    assert first.gc(pending_age=timedelta(0)) == []
    assert _ids(second, "frames@1") == [100, 101, 102, 103, 104]
    assert second.verify("frames@1") == []
    keys = s3.keys()
    b_keys = sorted(
        u.removeprefix(f"s3://{s3.bucket}/") + sfx
        for u in b.urls
        for sfx in ("", ".idx", ".manifest")
    )
    assert keys == b_keys  # exactly the second's shards and sidecars are left
    second.remove("frames@1")
    assert s3.keys() == []


def test_a_failed_write_in_one_leaves_the_other_whole(
    s3: S3Backend, pair: tuple[Index, Index]
) -> None:
    first, second = pair
    second.write(_ticks(4, 100), "frames", maxcount=2)

    def failing() -> Iterator[Tick]:
        yield from _ticks(5, 0)
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError, match="producer failed"):
        first.write(failing(), "frames", maxcount=2)
    assert _ids(second, "frames@1") == [100, 101, 102, 103]
    assert second.verify("frames@1") == []


def test_a_store_sink_never_replaces_an_existing_object(s3: S3Backend) -> None:
    if s3.name == "rclone":
        pytest.skip("rclone serve s3 ignores If-None-Match: writers are kept apart by write ids")
    store = S3DataStore(s3.bucket, PREFIX, config=s3.config, part_size=MIN_PART_SIZE)
    key = f"{PREFIX}/x/1/0123456789abcdef/x-000000.tar"
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=b"theirs")
    for size in (10, MIN_PART_SIZE + 10):  # a single PUT, and a multipart upload
        sink = store.open_sink(f"s3://{s3.bucket}/{key}")
        sink.write(b"o" * size)
        with pytest.raises(StoreError, match="already exists and was not overwritten"):
            sink.commit()
        assert s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == b"theirs"
        assert s3.uploads() == []  # the refused multipart upload was aborted


def test_removal_never_deletes_objects_outside_the_entrys_own_location(s3: S3Backend) -> None:
    store = S3DataStore(s3.bucket, PREFIX, config=s3.config)
    theirs = f"{PREFIX}/b/1/0123456789abcdef/b-000000.tar"
    s3.client.put_object(Bucket=s3.bucket, Key=theirs, Body=b"b's shard")
    with pytest.warns(UserWarning, match="did not delete"):
        store.delete_shards("a", 1, [f"s3://{s3.bucket}/{theirs}"])  # a forged trash record
    assert s3.keys() == [theirs]
