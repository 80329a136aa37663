"""An index whose shards live in S3, end to end, on every S3 server on loopback (moto, rclone).

``Index(provider, S3DataStore(bucket=..., prefix=..., endpoint_url=...))`` with a SQLite
provider: ``write`` streams shards straight into the bucket with sha256 checksums;
``load_dataset("@local/name")`` streams them back with the store's own endpoint and
credentials (no process-wide S3 configuration), verified against the record; failed writes
leave neither entries nor objects; ``s3://`` brace patterns and globs load the same shards;
a tampered object raises IntegrityError and is never cached; a cached second epoch makes no
request at all (counted by a proxy in front of the server).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pytest

import atdata
from atdata import Dataset, DatasetDict, DictSample, Index, NDArray, Shape, load_dataset
from atdata.errors import IntegrityError, NotFoundError, SchemaError, SourceError, StoreError
from atdata.index.providers.sqlite import SQLiteProvider
from atdata.manifest.format import MANIFEST_SUFFIX
from atdata.shards.offsets import OFFSETS_SUFFIX
from atdata.sources.cache import CACHE_DIR_ENV, ShardCache
from atdata.sources.s3 import configure, current_config
from atdata.stores.s3 import MIN_PART_SIZE, S3DataStore
from tcp_proxy import CuttingProxy
from waiting import wait_until

if TYPE_CHECKING:
    from s3_backends import S3Backend

pytestmark = pytest.mark.services
pytest_plugins = ["s3_backends"]  # the `s3` fixture: moto and rclone on loopback

PREFIX = "datasets"
N = 25
PER_SHARD = 10


@atdata.packable
class Frame:
    i: int
    tag: str
    emb: Annotated[NDArray[np.float32], Shape(8)]


def _frame(i: int) -> Frame:
    return Frame(i, f"tag-{i:04d}", np.full(8, i, dtype=np.float32))


def _frames(n: int = N, start: int = 0) -> list[Frame]:
    return [_frame(i) for i in range(start, start + n)]


def _as_tuples(samples: Any) -> list[tuple[Any, ...]]:
    """(i, tag, emb) of typed samples; (i, tag) of DictSamples, whose arrays stay encoded bytes."""
    out: list[tuple[Any, ...]] = []
    for s in samples:
        if isinstance(s, DictSample):
            out.append((s["i"], s["tag"]))
        else:
            out.append((s.i, s.tag, np.asarray(s.emb).tolist()))
    return out


EXPECTED = _as_tuples(_frames())
EXPECTED_KEYS = [(i, tag) for i, tag, _ in EXPECTED]


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No process-wide S3 endpoint, index URL or cache: everything comes from the store."""
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "ATDATA_INDEX_URL", CACHE_DIR_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    assert current_config().endpoint_url is None


def _store(s3: S3Backend, endpoint: str | None = None, **kwargs: Any) -> S3DataStore:
    """The store the way a user writes it: bucket, prefix and endpoint_url (credentials and
    the server's quirks come from the backend's config, minus its endpoint)."""
    return S3DataStore(
        bucket=s3.bucket,
        prefix=PREFIX,
        endpoint_url=endpoint or s3.endpoint,
        config=s3.config.replace(endpoint_url=None),
        **kwargs,
    )


@pytest.fixture
def index(s3: S3Backend, tmp_path: Path) -> Iterator[Index]:
    with Index(SQLiteProvider(tmp_path / "index.db"), data_store=_store(s3)) as ix:
        yield ix


def _object(s3: S3Backend, url: str) -> bytes:
    key = url.removeprefix(f"s3://{s3.bucket}/")
    body: bytes = s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
    return body


def _uploads(s3: S3Backend) -> list[Any]:
    """Multipart uploads in progress (rclone answers NoSuchUpload when there are none)."""
    try:
        return s3.uploads()
    except Exception as exc:
        if getattr(exc, "response", {}).get("Error", {}).get("Code") == "NoSuchUpload":
            return []
        raise


def _local_files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and "index.db" not in p.name
    )


# ------------------------------------------------------------------------- write and load
def test_write_streams_shards_into_the_bucket_and_load_dataset_streams_them_back(
    s3: S3Backend, index: Index, tmp_path: Path
) -> None:
    entry = index.write(_frames(), name="team/frames", maxcount=PER_SHARD)

    write_id = entry.urls[0].split("/")[-2]  # <prefix>/<name>/<version>/<write id>/<shard>
    assert len(write_id) == 16
    base = f"s3://{s3.bucket}/{PREFIX}/team/frames/1/{write_id}/frames-"
    assert entry.urls == [f"{base}{i:06d}.tar" for i in range(3)]
    assert entry.stored and entry.count == N
    assert [s.count for s in entry.shards] == [10, 10, 5]
    keys = s3.keys()
    assert keys == sorted(
        u.removeprefix(f"s3://{s3.bucket}/") + suffix
        for u in entry.urls
        for suffix in ("", OFFSETS_SUFFIX, MANIFEST_SUFFIX)
    )
    for shard in entry.shards:
        data = _object(s3, shard.url)
        assert shard.checksum.algorithm == "sha256"
        assert hashlib.sha256(data).hexdigest() == shard.checksum.digest
        assert len(data) == shard.size
    assert _uploads(s3) == []
    assert _local_files(tmp_path) == []  # nothing was staged on local disk
    assert index.verify("team/frames") == []

    splits = load_dataset("@local/team/frames", index=index)
    assert isinstance(splits, DatasetDict) and list(splits) == ["train"]
    ds = load_dataset("@local/team/frames", index=index, split="train")
    assert isinstance(ds, Dataset) and ds.urls == entry.urls
    rebuilt = ds.sample_type
    assert rebuilt is not Frame and rebuilt.__name__ == "Frame"
    samples = list(ds)
    assert all(type(s) is rebuilt for s in samples)
    assert _as_tuples(samples) == EXPECTED
    assert len(ds) == N and _as_tuples([ds[13], ds[-1]]) == [EXPECTED[13], EXPECTED[-1]]
    batches = list(ds.ordered(batch_size=10))
    assert [b.emb.shape for b in batches] == [(10, 8), (10, 8), (5, 8)]
    shuffled = list(ds.shuffled(seed=3, buffer_size=7))
    assert sorted(_as_tuples(shuffled)) == EXPECTED
    typed = load_dataset("@local/team/frames@1", Frame, index=index, split="train")
    assert typed.sample_type is Frame and _as_tuples(typed) == EXPECTED
    # the process-wide config was never touched: the store's endpoint did all the reading
    assert current_config().endpoint_url is None


def test_versions_and_removal_in_the_bucket(s3: S3Backend, index: Index) -> None:
    def ids(ref: str) -> list[int]:
        return [s.i for s in load_dataset(ref, index=index, split="train")]

    index.write(_frames(4), name="frames")
    second = index.write(_frames(3, start=100), name="frames")
    assert second.version == 2
    assert ids("@local/frames@1") == [0, 1, 2, 3]
    assert ids("@local/frames") == [100, 101, 102]
    index.remove("frames@1")
    assert s3.keys() and all("/frames/1/" not in k for k in s3.keys())
    assert ids("@local/frames") == [100, 101, 102]
    with pytest.raises(NotFoundError):
        load_dataset("@local/frames@1", index=index)
    index.remove("frames")
    assert s3.keys() == [] and index.gc() == []  # nothing left in the bucket or to clean


# ---------------------------------------------------------------------------- failed writes
@atdata.packable
class _Big:
    i: int
    blob: NDArray[np.uint8]


@pytest.mark.parametrize("kind", ["single-put shards", "multipart shard"])
def test_a_sample_failing_halfway_leaves_no_entry_and_no_objects(
    s3: S3Backend, tmp_path: Path, kind: str
) -> None:
    multipart = kind == "multipart shard"

    def samples() -> Iterator[Any]:
        if multipart:  # 6 MiB into one shard: its first 5 MiB part is already uploading
            yield from (_Big(i, np.full(2 << 20, i, dtype=np.uint8)) for i in range(3))
            # (shards are written on the writer's background thread: wait for the upload to open)
            wait_until(lambda: len(_uploads(s3)) == 1, "the multipart upload to open")
            yield _Big("not an int", np.zeros(1, dtype=np.uint8))  # type: ignore[arg-type]
        else:  # two whole shards (with their offset indexes and manifests) are in the bucket first
            yield from _frames(23)
            wait_until(lambda: len(s3.keys()) == 6, "two whole shards in the bucket")
            yield Frame("not an int", "x", np.zeros(8, dtype=np.float32))  # type: ignore[arg-type]

    store = _store(s3, part_size=MIN_PART_SIZE)
    with Index(SQLiteProvider(tmp_path / "index.db"), data_store=store) as index:
        with pytest.raises(SchemaError):
            index.write(samples(), name="broken", maxcount=100 if multipart else PER_SHARD)
        assert s3.keys() == []  # the shards committed before the failure were deleted
        assert _uploads(s3) == []  # and the open multipart upload was aborted
        assert index.list_datasets() == []
        with pytest.raises(NotFoundError):
            index.get("broken")
        with pytest.raises(NotFoundError):
            load_dataset("@local/broken", index=index)
        assert index.gc(pending_age=timedelta(0)) == []  # nothing was left to clean up
        # the name is still usable; the failed version number is not reused
        entry = index.write(_frames(3), name="broken")
        assert entry.version == 2
        assert _as_tuples(load_dataset("@local/broken", index=index, split="train")) == EXPECTED[:3]


class _FailingProxy(CuttingProxy):
    """A proxy in front of the S3 server that can make it go away: while ``failing`` is set,
    every connection is dropped on its next request, unanswered."""

    failing = False

    def _log(self, head: bytes, state: dict[str, int | None]) -> None:
        if self.failing:
            raise OSError("injected: the server is gone")  # the pump drops the connection
        super()._log(head, state)


def test_a_server_failing_mid_write_leaves_no_entry_and_gc_removes_the_objects(
    s3: S3Backend, tmp_path: Path
) -> None:
    with _FailingProxy(s3.port) as proxy:
        store = _store(s3, endpoint=proxy.url)
        with Index(SQLiteProvider(tmp_path / "index.db"), data_store=store) as index:

            def samples() -> Iterator[Frame]:
                for i in range(N):
                    if i == PER_SHARD + 3:  # shard 0 is in the bucket; the server goes away
                        wait_until(lambda: len(s3.keys()) == 3, "shard 0 in the bucket")
                        proxy.failing = True
                    yield _frame(i)

            with pytest.raises(StoreError, match=r"frames-000001\.tar"):
                index.write(samples(), name="frames", maxcount=PER_SHARD)
            # the cleanup could not reach the server either: what was uploaded is still there,
            # but no entry points at it (or at anything)
            leftover = s3.keys()
            assert [k.rsplit("/", 1)[-1] for k in leftover][:1] == ["frames-000000.tar"]
            assert all(k.startswith(f"{PREFIX}/frames/1/") for k in leftover)
            assert index.list_datasets() == []
            with pytest.raises(NotFoundError):
                load_dataset("@local/frames", index=index)

            # the server is back: gc finishes the abandoned write, so no object outlives it
            proxy.failing = False
            assert index.gc(pending_age=timedelta(0)) == ["local:frames@1"]
            assert s3.keys() == [] and _uploads(s3) == []
            assert index.list_datasets() == []
            assert index.write(_frames(2), name="frames").version == 2
            again = load_dataset("@local/frames", index=index, split="train")
            assert _as_tuples(again) == EXPECTED[:2]


# ------------------------------------------------------------------------ s3:// URLs and globs
def test_s3_brace_patterns_and_globs_load_the_shards(s3: S3Backend, index: Index) -> None:
    entry = index.write(_frames(), name="frames", maxcount=PER_SHARD)
    base = entry.urls[0].removesuffix("000000.tar")  # s3://<bucket>/<prefix>/frames/1/<w>/frames-
    with configure(s3.config):  # plain s3:// URLs read with the process-wide config
        brace = load_dataset(base + "{000000..000002}.tar", split="train")
        assert brace.urls == entry.urls
        assert all(isinstance(s, DictSample) for s in brace.head(3))
        assert _as_tuples(brace) == EXPECTED_KEYS
        assert _as_tuples(load_dataset(base + "{000000..000002}.tar", Frame, split="train")) == (
            EXPECTED
        )

        for pattern in ("*.tar", "*", "00000?.tar", "[0-9]*"):
            globbed = load_dataset(base + pattern, split="train")
            assert globbed.urls == entry.urls, pattern  # never the .idx sidecars
            assert _as_tuples(globbed) == EXPECTED_KEYS, pattern
        # the same through Dataset itself
        assert Dataset(base + "*").urls == entry.urls
        deep = load_dataset(f"s3://{s3.bucket}/{PREFIX}/**/frames-*.tar", split="train")
        assert deep.urls == entry.urls

        with pytest.raises(SourceError) as info:
            load_dataset(f"s3://{s3.bucket}/{PREFIX}/nothing-*.tar")
        assert "tried" in str(info.value) and "nothing-*.tar" in str(info.value)


def test_s3_globs_over_split_named_datasets(s3: S3Backend, index: Index) -> None:
    index.write(_frames(4), name="mnist-train", maxcount=2)
    index.write(_frames(2, start=50), name="mnist-test")
    index.write(_frames(1, start=90), name="mnist-dev")
    index.write(_frames(1, start=99), name="contest")  # holds no split word
    with configure(s3.config):  # sources are opened (and take the config) as they are read
        splits = load_dataset(f"s3://{s3.bucket}/{PREFIX}/*/1/*/*.tar")
        assert {k: sorted(s["i"] for s in v) for k, v in splits.items()} == {
            "train": [0, 1, 2, 3, 99],
            "test": [50, 51],
            "validation": [90],
        }


# --------------------------------------------------------------------------------- integrity
def _tamper(s3: S3Backend, url: str, old: bytes, new: bytes) -> None:
    """Overwrite the object at ``url`` with its bytes changed in one sample's payload (same size,
    so the tar layout and offset sidecar still fit and only the checksum can tell)."""
    data = _object(s3, url)
    assert data.count(old) == 1 and len(old) == len(new)
    s3.client.put_object(
        Bucket=s3.bucket, Key=url.removeprefix(f"s3://{s3.bucket}/"), Body=data.replace(old, new)
    )


def test_a_tampered_object_raises_integrity_error_and_is_never_cached(
    s3: S3Backend, index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = index.write(_frames(), name="frames", maxcount=PER_SHARD)
    bad = entry.shards[1]
    _tamper(s3, bad.url, b"tag-0012", b"tag-9999")
    problems = index.verify("frames")
    assert [p.url for p in problems] == [bad.url]

    # streamed (no cache): the shard is checked as it is read
    with pytest.raises(IntegrityError) as info:
        list(load_dataset("@local/frames", index=index, split="train"))
    assert info.value.shard == bad.url and bad.url in str(info.value)

    # through the cache, on with $ATDATA_CACHE_DIR: the bad download is refused, not kept
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(cache_dir))
    ds = load_dataset("@local/frames", index=index, split="train")
    with pytest.raises(IntegrityError) as info:
        list(ds)
    assert info.value.shard == bad.url and bad.url in str(info.value)
    cache = ShardCache(cache_dir)
    assert cache.lookup(bad.url, bad.checksum.digest) is None
    assert cache.lookup(entry.shards[0].url, entry.shards[0].checksum.digest) is not None
    assert not [n for n in os.listdir(cache_dir) if n.startswith(".fill-")]
    with pytest.raises(IntegrityError):  # asked again, it is downloaded again, and refused again
        ds[PER_SHARD + 2]
    assert cache.lookup(bad.url, bad.checksum.digest) is None

    # the same through Dataset(cache=..., checksums=...) with the process-wide config
    checksums = {s.url: s.checksum.digest for s in entry.shards}
    own_cache = tmp_path / "own-cache"
    with configure(s3.config):
        direct = Dataset(entry.urls, Frame, cache=str(own_cache), checksums=checksums)
        with pytest.raises(IntegrityError, match=r"frames-000001\.tar"):
            list(direct)
    assert ShardCache(own_cache).lookup(bad.url, bad.checksum.digest) is None

    # once the object is put right, the same dataset reads (and caches) it
    _tamper(s3, bad.url, b"tag-9999", b"tag-0012")
    assert _as_tuples(ds) == EXPECTED
    assert cache.lookup(bad.url, bad.checksum.digest) is not None


# --------------------------------------------------------------------------------- requests
def test_a_second_epoch_over_a_cached_dataset_makes_no_requests(
    s3: S3Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with CuttingProxy(s3.port) as proxy:  # counts every request the client sends
        store = _store(s3, endpoint=proxy.url)
        with Index(SQLiteProvider(tmp_path / "index.db"), data_store=store) as index:
            index.write(_frames(), name="frames", maxcount=PER_SHARD)

            uncached = load_dataset("@local/frames", index=index, split="train")
            before = len(proxy.requests)
            assert _as_tuples(uncached) == EXPECTED
            assert len(proxy.requests) > before  # without a cache every epoch asks the server

            monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
            ds = load_dataset("@local/frames", index=index, split="train")
            before = len(proxy.requests)
            assert _as_tuples(ds) == EXPECTED and len(ds) == N  # epoch 1 fills the cache
            filled = proxy.requests[before:]
            assert filled and all(r.method == "GET" for r in filled)

            seen = len(proxy.requests)
            assert _as_tuples(ds) == EXPECTED  # epoch 2
            assert sorted(_as_tuples(ds.shuffled(seed=1, epoch=2))) == EXPECTED
            assert _as_tuples([ds[17], ds[3]]) == [EXPECTED[17], EXPECTED[3]]
            again = load_dataset("@local/frames", index=index, split="train")  # a fresh load
            assert _as_tuples(again) == EXPECTED and len(again) == N
            assert proxy.requests[seen:] == []
