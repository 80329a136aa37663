"""Writing shards into real S3 servers on loopback (moto, rclone) through S3DataStore's sinks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from atdata import write_samples
from atdata.errors import StoreError
from atdata.sample import DictSample
from atdata.shards.offsets import OFFSETS_SUFFIX
from atdata.shards.reader import iter_members, load_offsets
from atdata.shards.writer import ShardWriter
from atdata.stores.base import DataStore
from atdata.stores.s3 import MIN_PART_SIZE, S3DataStore, S3MultipartSink
from tcp_proxy import CuttingProxy

if TYPE_CHECKING:
    from s3_backends import S3Backend

pytestmark = pytest.mark.services
pytest_plugins = ["s3_backends"]  # the `s3` fixture: every S3 server on loopback

MiB = 1 << 20
W1 = "0123456789abcdef"
W2 = "fedcba9876543210"


@pytest.fixture
def store(s3: S3Backend) -> S3DataStore:
    return S3DataStore(s3.bucket, "datasets", config=s3.config, part_size=MIN_PART_SIZE)


def _samples(n: int, size: int = MiB) -> list[DictSample]:
    rng = np.random.default_rng(3)
    return [DictSample(i=i, blob=rng.integers(0, 255, size, dtype=np.uint8)) for i in range(n)]


def test_store_is_a_data_store_with_s3_urls(store: S3DataStore, s3: S3Backend) -> None:
    assert isinstance(store, DataStore) and store.kind == "s3"
    assert (
        store.shard_pattern("team/frames", 2, W1)
        == f"s3://{s3.bucket}/datasets/team/frames/2/{W1}/frames-%06d.tar"
    )
    assert store.url_for("x/y.tar") == f"s3://{s3.bucket}/datasets/x/y.tar"
    assert store.owns(f"s3://{s3.bucket}/datasets/x/y.tar")
    assert not store.owns(f"s3://{s3.bucket}/other/y.tar")
    assert not store.owns("s3://elsewhere/datasets/y.tar")
    assert not store.owns("/tmp/datasets/y.tar")
    for bad in ("../x.tar", "/abs.tar", "a//b.tar", "a/./b.tar", ""):
        with pytest.raises(StoreError):
            store.url_for(bad)
    with pytest.raises(StoreError, match="outside"):
        store.open_sink("s3://elsewhere/datasets/a.tar")
    with pytest.raises(ValueError):
        store.shard_pattern("../etc", 1, W1)
    with pytest.raises(ValueError, match="write id"):
        store.shard_pattern("etc", 1, "../x")


def test_large_shards_go_up_in_parts_and_read_back_identical(s3: S3Backend, tmp_path: Path) -> None:
    samples = _samples(24)  # about 24 MiB: two shards of 12, each more than two 5 MiB parts
    with CuttingProxy(s3.port) as proxy:  # to see the requests the sink makes
        store = S3DataStore(
            s3.bucket,
            "datasets",
            config=s3.config.replace(endpoint_url=proxy.url),
            part_size=MIN_PART_SIZE,
        )
        pattern = store.shard_pattern("frames", 1, W1)
        with ShardWriter(pattern, maxcount=12, sink_factory=store.sink_factory) as writer:
            writer.write_all(samples)
        requests = proxy.requests
    infos = writer.shards
    local = write_samples(samples, str(tmp_path / "frames-%06d.tar"), maxcount=12).shard_infos
    assert [i.checksum.digest for i in infos] == [
        i.checksum.digest for i in local
    ]  # the same bytes as on disk
    assert [i.url for i in infos] == [pattern % 0, pattern % 1]

    for info, ref in zip(infos, local, strict=True):
        key = info.url.removeprefix(f"s3://{s3.bucket}/")
        path = f"/{s3.bucket}/{key}"
        mine = [r for r in requests if r.target.split("?")[0] == path]
        assert [r.method for r in mine] == ["POST", "PUT", "PUT", "PUT", "POST"]  # create, 3, done
        assert "uploads" in mine[0].target and "uploadId=" in mine[-1].target
        parts = mine[1:4]
        assert [f"partNumber={n}" in r.target for n, r in zip((1, 2, 3), parts, strict=True)] == [
            True
        ] * 3
        # every part but the last is exactly part_size: memory is bounded by parts, not shards
        assert [r.length for r in parts[:2]] == [MIN_PART_SIZE, MIN_PART_SIZE]
        assert sum(r.length or 0 for r in parts) == info.size
        sidecar = [r for r in requests if r.target.split("?")[0] == path + OFFSETS_SUFFIX]
        assert [r.method for r in sidecar] == ["PUT"]  # small: one PUT

        head = s3.client.head_object(Bucket=s3.bucket, Key=key)
        assert head["ContentLength"] == info.size
        body = s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == info.checksum.digest
        assert body == Path(ref.url).read_bytes()

        reader = S3DataStore(s3.bucket, "datasets", config=s3.config)
        assert reader.exists(info.url) and reader.exists(info.url + OFFSETS_SUFFIX)
        src = reader.open_source(info.url)
        index = load_offsets(src)
        assert index is not None and index.sha256 == info.checksum.digest
        assert len(list(iter_members(src))) == 12  # one member per sample
    assert s3.uploads() == []


def test_small_shards_are_a_single_put(store: S3DataStore, s3: S3Backend) -> None:
    pattern = store.shard_pattern("tiny", 1, W1)
    with ShardWriter(pattern, sink_factory=store.sink_factory) as writer:
        writer.write_all(_samples(3, size=1000))
    (info,) = writer.shards
    head = s3.client.head_object(Bucket=s3.bucket, Key=info.url.removeprefix(f"s3://{s3.bucket}/"))
    assert "-" not in head["ETag"].strip('"')
    assert head["ContentType"] == "application/x-tar"


def test_abort_leaves_no_object_and_no_upload(store: S3DataStore, s3: S3Backend) -> None:
    sink = store.open_sink("manual/a.tar")
    assert isinstance(sink, S3MultipartSink)
    data = os.urandom(MIN_PART_SIZE * 2 + 1234)
    for i in range(0, len(data), 300_000):
        sink.write(data[i : i + 300_000])
        assert len(sink._buffer) < sink.part_size  # bounded: never more than one part buffered
    assert len(s3.uploads()) == 1  # parts were already on their way
    sink.abort()
    sink.abort()  # idempotent
    assert s3.uploads() == []
    assert s3.keys() == []
    with pytest.raises(StoreError):
        sink.write(b"more")


def test_a_failing_writer_aborts_its_open_shard(store: S3DataStore, s3: S3Backend) -> None:
    pattern = store.shard_pattern("broken", 1, W1)
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(pattern, maxcount=100, sink_factory=store.sink_factory) as writer:
            writer.write_all(_samples(12))
            raise RuntimeError("boom")
    assert s3.keys() == []
    assert s3.uploads() == []


def test_a_failed_commit_is_a_store_error_and_leaves_nothing(
    store: S3DataStore, s3: S3Backend
) -> None:
    sink = store.open_sink("gone/a.tar")
    sink.write(os.urandom(MIN_PART_SIZE + 10))
    s3.client.abort_multipart_upload(
        Bucket=s3.bucket, Key="datasets/gone/a.tar", UploadId=s3.uploads()[0]["UploadId"]
    )
    with pytest.raises(StoreError, match=f"s3://{s3.bucket}/datasets/gone/a.tar") as err:
        sink.commit()
    assert type(err.value.__cause__).__module__.startswith("botocore")
    assert s3.keys() == [] and s3.uploads() == []


def test_delete_write_removes_one_write_with_its_dangling_uploads(
    store: S3DataStore, s3: S3Backend
) -> None:
    for version, write_id in ((1, W1), (1, W2), (2, W1)):
        pattern = store.shard_pattern("team/ds", version, write_id)
        with ShardWriter(pattern, maxcount=2, sink_factory=store.sink_factory) as w:
            w.write_all(_samples(4, size=100))
    crashed = store.open_sink(store.shard_pattern("team/ds", 1, W1) % 7)
    crashed.write(os.urandom(MIN_PART_SIZE))  # a writer that died mid-shard
    other = store.open_sink(store.shard_pattern("team/ds", 1, W2) % 7)
    other.write(os.urandom(MIN_PART_SIZE))  # another write, still going
    assert len(s3.uploads()) == 2

    store.delete_write("team/ds", 1, W1)
    store.delete_write("team/ds", 1, W1)  # idempotent
    keys = s3.keys()
    assert not [k for k in keys if k.startswith(f"datasets/team/ds/1/{W1}/")]
    assert len([k for k in keys if k.startswith(f"datasets/team/ds/1/{W2}/")]) == 4
    assert len([k for k in keys if k.startswith(f"datasets/team/ds/2/{W1}/")]) == 4
    assert [u["Key"] for u in s3.uploads()] == [f"datasets/team/ds/1/{W2}/ds-000007.tar"]
    other.abort()


def test_exists_and_delete_by_url(store: S3DataStore, s3: S3Backend) -> None:
    sink = store.open_sink(store.url_for("a/x.tar"))
    sink.write(b"abc")
    sink.commit()
    url = store.url_for("a/x.tar")
    assert store.exists(url)
    assert not store.exists(store.url_for("a/none.tar"))
    store.delete([url, store.url_for("a/none.tar")])
    assert not store.exists(url)
    with pytest.raises(StoreError, match="outside"):
        store.delete(["s3://elsewhere/k.tar"])
