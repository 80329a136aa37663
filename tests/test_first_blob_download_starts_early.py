"""``load_dataset("@handle/name")`` starts the first blob's download as soon as the entry is
known (beside the schema fetch): the first ``open()`` of that shard takes it; one that is not
taken in time stops and lets its bytes go, and the next ``open()`` downloads afresh. The bytes
are verified chunk by chunk exactly as in any other stream.

A loopback ``FileServer`` plays the PDS (every getBlob answers the file served) and counts the
downloads.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atdata import write_samples
from atdata.atmosphere.open_dataset import BlobOpener
from atdata.errors import IntegrityError
from atdata.sample import PackableSample
from atdata.shards.reader import iter_members
from atdata.sources.at import AtBlobSource, blob_url, cid_of_sha256
from atdata.sources.cache import ShardCache
from atdata.sources.chunked import ChunkDigests
from atmosphere_helpers import loopback_only  # noqa: F401 - autouse guard
from http_server import FileServer
from waiting import wait_until

DID = "did:plc:abcdefghijklmnopqrstuvwx"
CHUNK = 64 << 10
SMALL = os.urandom(5 * CHUNK + 1234)
LARGE = os.urandom(160 * CHUNK)  # more than the 8 MiB a stream queues ahead of its reader


def _serve(server: FileServer, body: bytes) -> None:
    where = server.root / "pds" / "xrpc"
    where.mkdir(parents=True, exist_ok=True)
    (where / "com.atproto.sync.getBlob").write_bytes(body)


def _url(server: FileServer, data: bytes) -> str:
    return blob_url(DID, cid_of_sha256(hashlib.sha256(data).digest()), f"{server.url}/pds")


def _downloads(server: FileServer) -> int:
    return sum(1 for r in server.requests if r.path.endswith("com.atproto.sync.getBlob"))


def test_an_open_in_time_takes_the_started_download(http_server: FileServer) -> None:
    _serve(http_server, SMALL)
    source = AtBlobSource(_url(http_server, SMALL), chunks=ChunkDigests.of(SMALL, CHUNK))
    source.start_stream(claim_within=600)
    wait_until(lambda: _downloads(http_server) == 1, what="the download starts before open()")
    with source.open() as stream:
        assert stream.read() == SMALL
    assert _downloads(http_server) == 1
    with source.open() as stream:  # taken once: the next open() downloads again
        assert stream.read() == SMALL
    assert _downloads(http_server) == 2


def test_a_started_download_still_refuses_a_tampered_chunk(http_server: FileServer) -> None:
    bad = bytearray(SMALL)
    bad[3 * CHUNK + 5] ^= 0x01
    _serve(http_server, bytes(bad))
    source = AtBlobSource(_url(http_server, SMALL), chunks=ChunkDigests.of(SMALL, CHUNK))
    source.start_stream(claim_within=600)
    got = bytearray()
    with source.open() as stream, pytest.raises(IntegrityError, match="chunk 3 "):
        while piece := stream.read(10_000):
            got += piece
    assert bytes(got) == SMALL[: 3 * CHUNK]


def test_a_download_not_taken_in_time_stops_and_open_downloads_afresh(
    http_server: FileServer,
) -> None:
    _serve(http_server, LARGE)
    source = AtBlobSource(_url(http_server, LARGE), chunks=ChunkDigests.of(LARGE, CHUNK))
    source.start_stream(claim_within=0)
    started: Any = source._started
    thread = started._thread
    wait_until(lambda: not thread.is_alive(), what="the unclaimed download stops")
    assert started._queue.qsize() == 0  # its chunks were let go
    assert _downloads(http_server) == 1
    with source.open() as stream:
        assert stream.read() == LARGE
    assert _downloads(http_server) == 2


def test_the_opener_hands_its_prefetch_to_the_shard_source_once(http_server: FileServer) -> None:
    _serve(http_server, SMALL)
    url = _url(http_server, SMALL)
    opener = BlobOpener(None, {}, None, {url: ChunkDigests.of(SMALL, CHUNK)})
    opener.prefetch(url)
    opener.prefetch(url)  # already started: not twice
    wait_until(lambda: _downloads(http_server) == 1, what="the prefetch starts")
    with opener(url).open() as stream:
        assert stream.read() == SMALL
    with opener(url).open() as stream:  # a second source: its own download
        assert stream.read() == SMALL
    assert _downloads(http_server) == 2


def test_a_stopped_or_pickled_prefetch_is_not_used(http_server: FileServer) -> None:
    _serve(http_server, LARGE)
    url = _url(http_server, LARGE)
    opener = BlobOpener(None, {}, None, {url: ChunkDigests.of(LARGE, CHUNK)})
    opener.prefetch(url)
    copied = pickle.loads(pickle.dumps(opener))  # a download does not travel
    assert copied._started == {}
    started: Any = opener._started[url]._started
    opener.stop_prefetch()
    wait_until(lambda: not started._thread.is_alive(), what="the stopped download ends")
    with copied(url).open() as stream:
        assert stream.read() == LARGE
    assert _downloads(http_server) == 2


def test_no_prefetch_without_chunk_digests_or_through_a_shard_cache(
    http_server: FileServer, tmp_path: Any
) -> None:
    _serve(http_server, SMALL)
    url = _url(http_server, SMALL)
    BlobOpener(None, {}, None, {}).prefetch(url)
    BlobOpener(
        ShardCache(tmp_path / "cache"), {}, None, {url: ChunkDigests.of(SMALL, CHUNK)}
    ).prefetch(url)
    assert _downloads(http_server) == 0


class Frame(PackableSample):
    pixels: np.ndarray
    label: int


def test_the_first_samples_are_parsed_before_a_whole_read_buffer_arrives(
    http_server: FileServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the server sends 5 chunks (320 KiB) and then nothing: the reader must hand out the
    # samples in them (verified) rather than wait for its 4 MiB read buffer to fill
    monkeypatch.setenv("ATDATA_IDLE_TIMEOUT", "5")
    rng = np.random.default_rng(0)
    frames = (Frame(pixels=rng.integers(0, 255, (100, 1000), np.uint8), label=i) for i in range(50))
    (info,) = write_samples(frames, str(tmp_path / "f-%06d.tar"), maxcount=50).shard_infos
    shard = Path(info.url).read_bytes()
    _serve(http_server, shard)
    source = AtBlobSource(_url(http_server, shard), chunks=ChunkDigests.of(shard, CHUNK))
    expected = [(m.name, bytes(body)) for m, body in iter_members(info.url)]
    http_server.stall_next(1, after_bytes=5 * CHUNK)
    members = iter_members(source)
    got = [next(members) for _ in range(2)]  # ~200 KB of samples, well inside 5 chunks
    assert [(m.name, bytes(body)) for m, body in got] == expected[:2]
    http_server.reset()  # the stalled answer ends; the rest is not needed
    members.close()
