"""A remote shard whose bytes fail its recorded sha256 yields no sample, on every read path.

The attack: the shard at a URL is replaced by ``[other valid samples][end-of-archive]
[more than 4 MiB of anything]``. A reader that stops at the end-of-archive block never reaches
the end of the stream, so a check made only "when the stream has been read to its end" never
runs. These tests serve such bytes from real servers (the loopback HTTP server, moto/rclone S3,
an HTTP server answering as a PDS) and read them the ways a user does: iteration, batches,
``ds[i]``, with and without the shard cache, with and without a recorded size.
"""

from __future__ import annotations

import gc
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from atdata import Dataset, write_samples
from atdata.errors import IntegrityError
from atdata.sample import DictSample, packable
from atdata.shards.info import ShardInfo
from atdata.shards.offsets import OFFSETS_SUFFIX
from atdata.shards.shardset import ShardSet
from atdata.sources import open_source
from atdata.sources.at import AtBlobSource, blob_url, cid_of_sha256
from atdata.sources.cache import ShardCache, wrap_source
from atdata.sources.s3 import configure
from http_server import FileServer

if TYPE_CHECKING:
    from s3_backends import S3Backend

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("private_verify_memo")]
pytest_plugins = ["s3_backends"]


@packable
class Vec:
    i: int
    v: np.ndarray


def _shard(root: Path, name: str, first: int, count: int, width: int) -> ShardInfo:
    rng = np.random.default_rng(first)
    samples = (
        Vec(i=first + i, v=rng.standard_normal(width).astype(np.float32)) for i in range(count)
    )
    root.mkdir(parents=True, exist_ok=True)
    (info,) = write_samples(samples, str(root / name), maxcount=count).shard_infos
    return info


def _attack(tmp: Path) -> tuple[ShardInfo, bytes]:
    """The genuine shard (~6 MiB) and the attacker's replacement: other valid samples, the
    end-of-archive blocks, then 5 MiB of noise."""
    genuine = _shard(tmp / "genuine", "a-%06d.tar", 0, 12, 128 << 10)
    other = _shard(tmp / "other", "b-%06d.tar", 1000, 3, 1000)
    noise = np.random.default_rng(9).bytes(5 << 20)
    return genuine, Path(other.url).read_bytes() + noise


def _same_size(genuine: ShardInfo, tmp: Path) -> bytes:
    """A replacement of exactly the recorded size (so only the digest can catch it)."""
    other = Path(_shard(tmp / "other2", "c-%06d.tar", 2000, 3, 1000).url).read_bytes()
    pad = genuine.size - len(other)
    assert pad > 4 << 20
    return other + np.random.default_rng(3).bytes(pad)


def _drain(ds: Dataset[Any], *, batch_size: int | None = None) -> list[Any]:
    """Read ``ds`` until it ends or raises; what was yielded before the error is returned in
    the exception (as ``.yielded``), so a test can assert that nothing was."""
    got: list[Any] = []
    try:
        for item in ds.ordered(batch_size=batch_size):
            got.append(item)
    except IntegrityError as exc:
        exc.yielded = got  # type: ignore[attr-defined]
        raise
    return got


def _expect_nothing(ds: Dataset[Any], url: str, *, batch_size: int | None = None) -> None:
    with pytest.raises(IntegrityError) as err:
        _drain(ds, batch_size=batch_size)
    assert err.value.yielded == []  # type: ignore[attr-defined]
    assert err.value.shard == url


# ------------------------------------------------------------------------------------ http(s)
@pytest.mark.parametrize("batch_size", [None, 4])
@pytest.mark.parametrize("sample_type", [Vec, DictSample])
def test_http_without_cache_yields_no_sample_from_a_replaced_shard(
    http_server: FileServer, tmp_path: Path, batch_size: int | None, sample_type: type
) -> None:
    genuine, bad = _attack(tmp_path)
    (http_server.root / "a.tar").write_bytes(bad)
    url = http_server.url_for("a.tar")
    ds: Dataset[Any] = Dataset(url, sample_type, checksums={url: genuine.checksum.digest})
    _expect_nothing(ds, url, batch_size=batch_size if sample_type is Vec else None)


def test_http_with_a_recorded_size_refuses_before_reading_the_body(
    http_server: FileServer, tmp_path: Path
) -> None:
    genuine, bad = _attack(tmp_path)
    (http_server.root / "a.tar").write_bytes(bad)
    url = http_server.url_for("a.tar")
    src = wrap_source(
        open_source(url), expected_sha256=genuine.checksum.digest, expected_size=genuine.size
    )
    with pytest.raises(IntegrityError, match="record says"):
        src.open()


def test_http_with_the_right_size_but_other_bytes_yields_nothing(
    http_server: FileServer, tmp_path: Path
) -> None:
    genuine, _ = _attack(tmp_path)
    (http_server.root / "a.tar").write_bytes(_same_size(genuine, tmp_path))
    url = http_server.url_for("a.tar")

    def factory(u: str) -> Any:
        return wrap_source(
            open_source(u), expected_sha256=genuine.checksum.digest, expected_size=genuine.size
        )

    ds: Dataset[Vec] = Dataset(url, Vec, source_factory=factory)
    _expect_nothing(ds, url)


@pytest.mark.parametrize("cache_bytes", [1 << 30, 1 << 20], ids=["cached", "too-big-to-cache"])
def test_http_through_the_cache_yields_nothing_whether_or_not_it_fits(
    http_server: FileServer, tmp_path: Path, cache_bytes: int
) -> None:
    genuine, bad = _attack(tmp_path)
    (http_server.root / "a.tar").write_bytes(bad)
    url = http_server.url_for("a.tar")
    cache = ShardCache(tmp_path / "cache", max_bytes=cache_bytes)
    ds: Dataset[Vec] = Dataset(url, Vec, cache=cache, checksums={url: genuine.checksum.digest})
    _expect_nothing(ds, url, batch_size=4)
    assert [p for p, _, _ in cache.entries() if p.suffix == ".shard"] == []


def _flipped(genuine: ShardInfo) -> bytes:
    """The genuine shard with one byte of the last sample's array changed (same size)."""
    data = bytearray(Path(genuine.url).read_bytes())
    data[genuine.size - 4096] ^= 0x40
    return bytes(data)


@pytest.mark.parametrize("cached", [False, True])
def test_random_access_on_a_remote_shard_reads_only_verified_bytes(
    http_server: FileServer, tmp_path: Path, cached: bool
) -> None:
    genuine, _ = _attack(tmp_path)
    (http_server.root / "a.tar").write_bytes(_flipped(genuine))
    sidecar = Path(genuine.url + OFFSETS_SUFFIX).read_bytes()
    (http_server.root / ("a.tar" + OFFSETS_SUFFIX)).write_bytes(sidecar)  # the genuine index
    url = http_server.url_for("a.tar")
    cache = ShardCache(tmp_path / "cache") if cached else False
    ds: Dataset[Vec] = Dataset(url, Vec, cache=cache, checksums={url: genuine.checksum.digest})
    assert len(ds) == genuine.count
    with pytest.raises(IntegrityError) as err:
        ds[genuine.count - 1]
    assert err.value.shard == url
    with pytest.raises(IntegrityError):
        ds[0]  # a member the change did not touch: still not served from failing bytes

    # the genuine bytes back: random access works and reads the shard once, not per sample
    (http_server.root / "a.tar").write_bytes(Path(genuine.url).read_bytes())
    http_server.reset()
    ok: Dataset[Vec] = Dataset(url, Vec, cache=cache, checksums={url: genuine.checksum.digest})
    assert [ok[i].i for i in range(genuine.count)] == list(range(genuine.count))
    assert http_server.count("GET", "/a.tar") == 1


def _unlinked_open_files() -> int:
    """Open files of this process that have no name any more (spools), once garbage that still
    holds some (e.g. from an earlier test) is collected."""
    gc.collect()
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            found += os.readlink(f"/proc/self/fd/{fd}").endswith("(deleted)")
        except OSError:
            continue
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
def test_random_access_over_many_remote_shards_keeps_a_bounded_number_of_downloads(
    http_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from atdata.sources import spool

    monkeypatch.setattr(spool.kept_spools, "limit", 3)
    infos = [_shard(http_server.root, f"m{n}-%06d.tar", n * 10, 4, 1000) for n in range(8)]
    urls = [http_server.url_for(Path(i.url).name) for i in infos]
    ds: Dataset[Vec] = Dataset(
        urls, Vec, checksums={u: i.checksum.digest for u, i in zip(urls, infos, strict=True)}
    )
    before = _unlinked_open_files()  # pytest's output capture uses such files too
    assert [ds[n].i for n in range(0, 32, 4)] == [n * 10 for n in range(8)]
    assert _unlinked_open_files() - before == 3
    assert ds[0].i == 0  # let go, downloaded again when needed


# ------------------------------------------------------------------------------------------ S3
@pytest.mark.parametrize("cached", [False, True])
def test_s3_yields_no_sample_from_a_replaced_shard(
    s3: S3Backend, tmp_path: Path, cached: bool
) -> None:
    genuine, bad = _attack(tmp_path)
    s3.client.put_object(Bucket=s3.bucket, Key="t/a.tar", Body=bad)
    url = f"s3://{s3.bucket}/t/a.tar"
    cache = ShardCache(tmp_path / "cache") if cached else False
    with configure(s3.config):
        ds: Dataset[Vec] = Dataset(url, Vec, cache=cache, checksums={url: genuine.checksum.digest})
        _expect_nothing(ds, url, batch_size=4)
        s3.client.put_object(Bucket=s3.bucket, Key="t/a.tar", Body=Path(genuine.url).read_bytes())
        good: Dataset[Vec] = Dataset(
            url, Vec, cache=cache, checksums={url: genuine.checksum.digest}
        )
        assert [s.i for s in good] == list(range(genuine.count))


# ------------------------------------------------------------------------------------- at://
def test_a_pds_serving_other_bytes_for_a_blob_yields_nothing(
    http_server: FileServer, tmp_path: Path
) -> None:
    genuine, bad = _attack(tmp_path)
    digest = hashlib.sha256(Path(genuine.url).read_bytes()).digest()
    pds_root = http_server.root / "pds" / "xrpc"
    pds_root.mkdir(parents=True)
    (pds_root / "com.atproto.sync.getBlob").write_bytes(bad)
    url = blob_url(
        "did:plc:abcdefghijklmnopqrstuvwx", cid_of_sha256(digest), http_server.url + "/pds"
    )
    for cache in (None, ShardCache(tmp_path / "cache")):

        def factory(u: str, cache: ShardCache | None = cache) -> Any:
            return wrap_source(open_source(u), cache=cache)

        # a ShardSet, as atmosphere loading builds: "?pds=" in a blob URL is not a glob
        ds: Dataset[Vec] = Dataset(ShardSet([url], factory), Vec)
        _expect_nothing(ds, url, batch_size=4)
    # a record whose sha256 disagrees with the CID is refused before anything is fetched
    with pytest.raises(IntegrityError, match="disagree"):
        wrap_source(AtBlobSource(url), expected_sha256="0" * 64)
    assert os.path.exists(genuine.url)
