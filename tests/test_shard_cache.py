"""The local shard cache over a real HTTP server: fills once, then reads with no requests."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from atdata import ShardInfo, write_samples
from atdata.errors import IntegrityError
from atdata.sample import DictSample
from atdata.shards.offsets import OFFSETS_SUFFIX
from atdata.shards.reader import iter_members, load_offsets
from atdata.sources._retry import RetryPolicy
from atdata.sources.cache import (
    CACHE_DIR_ENV,
    CACHE_MAX_BYTES_ENV,
    CachedSource,
    ShardCache,
    VerifyingSource,
    VerifyingStream,
    wrap_source,
)
from atdata.sources.file import FileSource
from atdata.sources.http import HttpSource
from http_server import FileServer

pytestmark = pytest.mark.services

FAST = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.02)


def _write(root: Path, shards: int = 3, per_shard: int = 20) -> list[ShardInfo]:
    rng = np.random.default_rng(2)
    samples = (
        DictSample(v=rng.standard_normal(1000).astype(np.float32), i=i)
        for i in range(shards * per_shard)
    )
    return write_samples(samples, str(root / "c-%06d.tar"), maxcount=per_shard).shard_infos


def _epoch(
    server: FileServer, infos: list[ShardInfo], cache: ShardCache
) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for info in infos:
        url = server.url_for(Path(info.url).name)
        with HttpSource(url, retry=FAST) as inner:
            src = CachedSource(inner, cache, expected_sha256=info.checksum.digest)
            index = load_offsets(src)
            assert index is not None and len(index) == info.count
            out += [(m.name, bytes(b)) for m, b in iter_members(src)]
    return out


def test_second_epoch_reads_the_cache_with_zero_requests(
    http_server: FileServer, tmp_path: Path
) -> None:
    infos = _write(http_server.root)
    cache = ShardCache(tmp_path / "cache", max_bytes=1 << 30)
    first = _epoch(http_server, infos, cache)
    after_first = len(http_server.requests)
    # one GET per shard, one per sidecar: nothing was fetched twice
    assert after_first == 2 * len(infos)
    assert sorted(r.path for r in http_server.requests) == sorted(
        p for i in infos for p in (f"/{Path(i.url).name}", f"/{Path(i.url).name}.idx")
    )

    second = _epoch(http_server, infos, cache)
    assert len(http_server.requests) == after_first  # zero network requests
    expected = [(m.name, bytes(b)) for i in infos for m, b in iter_members(i.url)]
    assert first == second == expected

    src = CachedSource(
        HttpSource(http_server.url_for("c-000000.tar")), cache, infos[0].checksum.digest
    )
    path = src.local_path()
    assert path is not None and Path(path).parent == cache.directory
    assert Path(path).read_bytes() == Path(infos[0].url).read_bytes()
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == infos[0].checksum.digest


def test_a_missing_sidecar_is_remembered(http_server: FileServer, tmp_path: Path) -> None:
    (info,) = _write(http_server.root, shards=1)
    os.remove(info.url + OFFSETS_SUFFIX)
    cache = ShardCache(tmp_path / "cache")
    url = http_server.url_for(Path(info.url).name)
    for _ in range(2):
        src = CachedSource(HttpSource(url), cache)
        assert src.read_sidecar(OFFSETS_SUFFIX) is None
    assert http_server.count("GET", "/c-000000.tar.idx") == 1


def test_least_recently_used_shards_are_evicted_by_bytes(
    http_server: FileServer, tmp_path: Path
) -> None:
    a, b, c = _write(http_server.root)
    size = a.size
    assert b.size == c.size == size
    cache = ShardCache(tmp_path / "cache", max_bytes=2 * size + size // 2)

    def get(info: ShardInfo) -> str | None:
        src = CachedSource(
            HttpSource(http_server.url_for(Path(info.url).name)), cache, info.checksum.digest
        )
        return src.local_path()

    path_a, path_b = get(a), get(b)
    assert path_a and path_b
    os.utime(path_a, ns=(1, 1_000_000_000))  # make the clock order explicit: b is newer
    os.utime(path_b, ns=(1, 2_000_000_000))
    get(a)  # a hit: a is now the most recently used
    path_c = get(c)
    assert path_c is not None
    assert os.path.exists(path_a) and os.path.exists(path_c)
    assert not os.path.exists(path_b)  # least recently used, evicted
    assert cache.total_bytes() <= cache.max_bytes
    gets = http_server.count("GET")
    get(b)  # evicted: fetched again
    assert http_server.count("GET") == gets + 1


def test_a_shard_larger_than_the_cache_is_streamed_uncached(
    http_server: FileServer, tmp_path: Path
) -> None:
    (info,) = _write(http_server.root, shards=1)
    cache = ShardCache(tmp_path / "cache", max_bytes=info.size // 2)
    src = CachedSource(HttpSource(http_server.url_for("c-000000.tar")), cache, info.checksum.digest)
    assert src.local_path() is None
    members = [(m.name, bytes(b)) for m, b in iter_members(src)]
    assert members == [(m.name, bytes(b)) for m, b in iter_members(info.url)]
    assert cache.entries() == []
    assert not any(p.name.startswith(".") for p in cache.directory.iterdir())


def test_a_corrupted_download_raises_and_is_not_cached(
    http_server: FileServer, tmp_path: Path
) -> None:
    (info,) = _write(http_server.root, shards=1)
    data = bytearray(Path(info.url).read_bytes())
    data[5000] ^= 0xFF  # the server now serves a corrupted copy
    Path(info.url).write_bytes(bytes(data))
    cache = ShardCache(tmp_path / "cache")
    url = http_server.url_for("c-000000.tar")
    for attempt in range(2):
        src = CachedSource(HttpSource(url), cache, expected_sha256=info.checksum.digest)
        with pytest.raises(IntegrityError) as err:
            list(iter_members(src))
        assert url in str(err.value) and info.checksum.digest in str(err.value)
        assert err.value.shard == url
        assert list(cache.directory.iterdir()) == []  # no entry, no temporary left behind
        assert http_server.count("GET", "/c-000000.tar") == attempt + 1


def test_verifying_stream_checks_uncached_remote_reads(
    http_server: FileServer, tmp_path: Path
) -> None:
    (info,) = _write(http_server.root, shards=1)
    url = http_server.url_for("c-000000.tar")
    good = wrap_source(HttpSource(url), expected_sha256=info.checksum.digest)
    assert isinstance(good, VerifyingSource)
    assert len(list(iter_members(good))) == info.count

    bad = wrap_source(HttpSource(url), expected_sha256="0" * 64)
    with pytest.raises(IntegrityError, match="sha256"):
        list(iter_members(bad))

    # the error comes from the read that reaches the end, not later from close()
    stream = VerifyingStream(HttpSource(url).open(), "0" * 64, url)
    assert stream.read(1000)
    with pytest.raises(IntegrityError):
        stream.read()
    stream.close()

    # a consumer that stops early has not read the shard: nothing is judged, nothing raised
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stream = VerifyingStream(HttpSource(url).open(), "0" * 64, url)
        assert len(stream.read(1000)) == 1000
        stream.close()
        del stream

    # a stream that does not know its size is judged at the b"" that ends it
    plain = VerifyingStream(open(info.url, "rb"), "0" * 64, info.url)
    assert len(plain.read(info.size)) == info.size
    with pytest.raises(IntegrityError):
        plain.read(1)
    plain.close()


def test_local_sources_are_never_copied(tmp_path: Path) -> None:
    (info,) = _write(tmp_path, shards=1)
    cache = ShardCache(tmp_path / "cache")
    local = FileSource(info.url)
    wrapped = wrap_source(local, cache=cache, expected_sha256=info.checksum.digest)
    assert wrapped.local_path() == info.url  # read in place (and verified there)
    assert wrap_source(local, cache=cache) is local
    assert CachedSource(local, cache).local_path() == info.url
    assert cache.entries() == []


def test_cache_settings_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    monkeypatch.delenv(CACHE_MAX_BYTES_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ShardCache.from_setting(None) is None  # off by default
    assert ShardCache.from_setting(False) is None
    on = ShardCache.from_setting(True)
    assert on is not None and on.directory == tmp_path / "xdg" / "atdata" / "shards"
    explicit = ShardCache.from_setting(tmp_path / "here")
    assert explicit is not None and explicit.directory == tmp_path / "here"
    assert ShardCache.from_setting(explicit) is explicit

    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "env"))
    monkeypatch.setenv(CACHE_MAX_BYTES_ENV, "1.5G")
    env = ShardCache.from_setting(None)
    assert env is not None and env.directory == tmp_path / "env"
    assert env.max_bytes == 3 << 29
    assert ShardCache.from_setting(False) is None
    monkeypatch.setenv(CACHE_MAX_BYTES_ENV, "lots")
    with pytest.raises(ValueError, match=CACHE_MAX_BYTES_ENV):
        ShardCache(tmp_path / "x")


def test_sources_and_caches_pickle_for_worker_processes(
    http_server: FileServer, tmp_path: Path
) -> None:
    import pickle

    (info,) = _write(http_server.root, shards=1)
    url = http_server.url_for("c-000000.tar")
    src = CachedSource(
        HttpSource(url, retry=FAST), ShardCache(tmp_path / "cache"), info.checksum.digest
    )
    assert src.read_range(0, 10)  # a live client and a filled entry do not stop pickling
    clone = pickle.loads(pickle.dumps(src))
    assert clone.url == url and clone.cache.directory == src.cache.directory
    assert clone.local_path() == src.local_path()
    remote = pickle.loads(pickle.dumps(HttpSource(url, retry=FAST)))
    assert remote.read_range(0, 512) == Path(info.url).read_bytes()[:512]
    remote.close()


def test_a_fill_without_a_checksum_is_cached_whole_and_not_hashed(
    http_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import atdata.sources.cache as cache_module

    (info,) = _write(http_server.root, shards=1)
    url = http_server.url_for(Path(info.url).name)
    real = hashlib.sha256
    made: list[tuple[object, ...]] = []

    def spy(*args: object) -> object:
        made.append(args)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(cache_module.hashlib, "sha256", spy)
    cache = ShardCache(tmp_path / "cache")
    path = cache.get(HttpSource(url, retry=FAST))
    assert path is not None
    assert path.read_bytes() == Path(info.url).read_bytes()
    assert () not in made  # only entry keys were hashed, never the shard's bytes
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".fill-")]

    checked = cache.get(HttpSource(url, retry=FAST), expected_sha256=info.checksum.digest)
    assert checked is not None and checked != path
    assert () in made  # with a checksum the download is hashed (and matched)
    assert checked.read_bytes() == path.read_bytes()
