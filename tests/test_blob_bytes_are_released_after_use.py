"""A pass over at:// blob shards does not keep the blobs in memory: each blob is downloaded to
an unlinked temporary file, verified against its CID, read, and freed when its stream closes.

The PDS is the loopback HTTP server answering ``com.atproto.sync.getBlob`` (a transport seam:
the bytes and the CID check are real)."""

from __future__ import annotations

import gc
import hashlib
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atdata import Dataset, write_samples
from atdata.sample import packable
from atdata.shards.shardset import ShardSet
from atdata.sources import open_source
from atdata.sources.at import AtBlobSource, blob_url, cid_of_sha256
from atdata.sources.cache import wrap_source
from http_server import FileServer

pytestmark = pytest.mark.services

BLOBS = 8
MIB = 1 << 20


@packable
class Frame:
    i: int
    pixels: np.ndarray


def _publish(server: FileServer, tmp: Path) -> list[str]:
    """``BLOBS`` shards of about 6 MiB, each served as a blob by its own pretend PDS path."""
    urls = []
    for b in range(BLOBS):
        rng = np.random.default_rng(b)
        frames = (
            Frame(i=b * 100 + i, pixels=rng.integers(0, 255, 1 << 20, dtype=np.uint8))
            for i in range(6)
        )
        (info,) = write_samples(frames, str(tmp / f"blob{b}-%06d.tar"), maxcount=6).shard_infos
        data = Path(info.url).read_bytes()
        where = server.root / f"pds{b}" / "xrpc"
        where.mkdir(parents=True)
        (where / "com.atproto.sync.getBlob").write_bytes(data)
        cid = cid_of_sha256(hashlib.sha256(data).digest())
        urls.append(blob_url("did:plc:abcdefghijklmnopqrstuvwx", cid, f"{server.url}/pds{b}"))
    return urls


def _dataset(urls: list[str]) -> Dataset[Frame]:
    def factory(url: str) -> Any:
        return wrap_source(open_source(url))

    return Dataset(ShardSet(list(urls), factory), Frame)


def test_one_pass_over_blob_shards_keeps_no_blob_alive(
    http_server: FileServer, tmp_path: Path
) -> None:
    urls = _publish(http_server, tmp_path)
    # one blob read first, outside the measurement: the HTTP client library is imported and its
    # pooled client built on first use, and those live for the process, not for a pass
    assert len([f.i for f in _dataset(urls[:1])]) == 6
    ds = _dataset(urls)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        seen = [f.i for f in ds]
        gc.collect()
        live, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == [b * 100 + i for b in range(BLOBS) for i in range(6)]
    # the dataset (and its sources) are still alive: none of the ~48 MiB of blobs is
    assert live - base < 2 * MIB, f"{(live - base) / MIB:.1f} MiB still allocated"
    # at most a few blobs at once (one in its spool, chunks of the next), never all of them
    assert peak - base < 36 * MIB, f"peak {(peak - base) / MIB:.1f} MiB"
    assert ds.shards.urls == urls


def test_random_access_keeps_blobs_on_disk_not_in_memory(
    http_server: FileServer, tmp_path: Path
) -> None:
    urls = _publish(http_server, tmp_path)
    ds = _dataset(urls)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        assert len(ds) == BLOBS * 6
        picked = [ds[n].i for n in range(0, BLOBS * 6, 5)]
        again = [ds[n].i for n in range(0, BLOBS * 6, 5)]
        gc.collect()
        live = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert picked == again == [(n // 6) * 100 + n % 6 for n in range(0, BLOBS * 6, 5)]
    assert live - base < 4 * MIB, f"{(live - base) / MIB:.1f} MiB still allocated"
    # each blob was downloaded once for the index scan and the random reads together
    assert http_server.count("GET") == BLOBS


def test_fetch_still_returns_the_verified_bytes(http_server: FileServer, tmp_path: Path) -> None:
    urls = _publish(http_server, tmp_path)
    src = AtBlobSource(urls[0])
    data = src.fetch()
    assert hashlib.sha256(data).hexdigest() == src.content_sha256
