"""Blobs published with per-chunk sha256 digests stream verified: each chunk is handed out only
after it matches its digest, so the first batch need not wait for the whole blob, and a tampered
chunk is caught before any sample of it is yielded.

The unit cases serve a getBlob body from the loopback ``FileServer`` (a PDS that lies about a
blob's bytes); the end-to-end cases publish to the real local PDS of the test harness and tamper
with, or strip, the chunk digests of the published entry record.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata.atmosphere import AtmosphereClient, BlobStorage, Resolver
from atdata.atmosphere.publish import publish_dataset
from atdata.errors import IntegrityError
from atdata.index import Index
from atdata.sample import packable
from atdata.schema import Shape
from atdata.shards.reader import iter_members
from atdata.sources import open_source
from atdata.sources.at import AtBlobSource, blob_url, cid_of_sha256
from atdata.sources.chunked import CHUNK_BYTES, ChunkDigests, chunk_size_for
from atdata07 import VENV07_PYTHON, run_under_07
from atmosphere_helpers import (
    loopback_only,  # noqa: F401 - autouse guard
    new_account_session,
)
from http_server import FileServer
from waiting import wait_until

DID = "did:plc:abcdefghijklmnopqrstuvwx"
CHUNK = 64 << 10
DATA = os.urandom(5 * CHUNK + 1234)


def _serve(server: FileServer, body: bytes) -> None:
    where = server.root / "pds" / "xrpc"
    where.mkdir(parents=True, exist_ok=True)
    (where / "com.atproto.sync.getBlob").write_bytes(body)


def _source(server: FileServer, chunks: ChunkDigests, whole: bytes = DATA) -> AtBlobSource:
    cid = cid_of_sha256(hashlib.sha256(whole).digest())
    return AtBlobSource(blob_url(DID, cid, f"{server.url}/pds"), chunks=chunks)


def _read_until_error(stream: Any) -> tuple[bytes, BaseException | None]:
    got = bytearray()
    try:
        while piece := stream.read(10_000):
            got += piece
    except IntegrityError as exc:
        return bytes(got), exc
    return bytes(got), None


# ------------------------------------------------------------------------- against a lying PDS
def test_an_honest_blob_streams_whole_and_unchanged(http_server: FileServer) -> None:
    _serve(http_server, DATA)
    with _source(http_server, ChunkDigests.of(DATA, CHUNK)).open() as stream:
        assert stream.read() == DATA


def test_a_tampered_chunk_yields_no_byte_of_itself(http_server: FileServer) -> None:
    bad = bytearray(DATA)
    bad[2 * CHUNK + 17] ^= 0xFF  # chunk 2
    _serve(http_server, bytes(bad))
    with _source(http_server, ChunkDigests.of(DATA, CHUNK)).open() as stream:
        got, error = _read_until_error(stream)
    assert isinstance(error, IntegrityError) and "chunk 2 " in str(error)
    assert got == DATA[: 2 * CHUNK]  # chunks 0 and 1, verified; nothing of chunk 2


@pytest.mark.parametrize("body", [DATA + b"x", DATA[:-1], DATA[: 3 * CHUNK]])
def test_a_body_longer_or_shorter_than_its_chunks_is_refused(
    http_server: FileServer, body: bytes
) -> None:
    _serve(http_server, body)
    with _source(http_server, ChunkDigests.of(DATA, CHUNK)).open() as stream:
        got, error = _read_until_error(stream)
    assert isinstance(error, IntegrityError)
    assert DATA.startswith(got) and len(got) <= 5 * CHUNK


def test_chunks_that_match_but_a_whole_that_misses_the_cid_fail_before_the_end(
    http_server: FileServer,
) -> None:
    other = os.urandom(len(DATA))
    _serve(http_server, other)
    # digests of what is served, but a CID of other bytes: the record contradicts itself
    with _source(http_server, ChunkDigests.of(other, CHUNK), whole=DATA).open() as stream:
        got, error = _read_until_error(stream)
    assert isinstance(error, IntegrityError) and "CID" in str(error)
    assert got == other  # every byte handed out matched its chunk digest


def test_closing_a_stream_early_ends_its_download(http_server: FileServer) -> None:
    _serve(http_server, DATA)
    stream = _source(http_server, ChunkDigests.of(DATA, CHUNK)).open()
    assert stream.read(10) == DATA[:10]
    thread = stream._thread  # type: ignore[attr-defined]
    stream.close()
    wait_until(lambda: not thread.is_alive(), what="the download thread ends")


def test_a_stream_dropped_without_closing_ends_its_download(http_server: FileServer) -> None:
    _serve(http_server, DATA * 40)  # more than the queue holds: the download must be stopped
    whole = DATA * 40
    stream = _source(http_server, ChunkDigests.of(whole, CHUNK), whole=whole).open()
    assert stream.read(10) == whole[:10]
    thread = stream._thread  # type: ignore[attr-defined]
    del stream
    gc.collect()
    wait_until(lambda: not thread.is_alive(), what="the download thread ends")


def test_chunk_digests_round_trip_and_refuse_bad_shapes() -> None:
    chunks = ChunkDigests.of(DATA, CHUNK)
    assert chunks.count == 6 and chunks.fits(len(DATA)) and not chunks.fits(len(DATA) + CHUNK)
    assert ChunkDigests.from_text(CHUNK, chunks.to_text()) == chunks
    for size, digests in [(CHUNK + 1, chunks.digests), (1024, chunks.digests), (CHUNK, b"x" * 33)]:
        with pytest.raises(ValueError):
            ChunkDigests(size, digests)
    with pytest.raises(ValueError):
        ChunkDigests.from_text(CHUNK, "not base64!")
    # the chunk size grows with the dataset so that a record holds a bounded number of digests
    assert chunk_size_for([48 << 20] * 3) == CHUNK_BYTES
    assert chunk_size_for([48 << 20] * 1000) == 16 << 20
    assert chunk_size_for([48 << 20] * 2000) is None  # too many: blobs verified whole
    # chunks too large to hold in memory while they are verified are not streamed
    big = ChunkDigests(32 << 20, bytes(64))
    assert big.count == 2 and not big.fits(40 << 20)


# ------------------------------------------------------------------------------ on a real PDS
@packable
class Wide:
    """A sample of about 200 KiB, so that a shard spans several 1 MiB chunks."""

    x: Annotated[NDArray[np.uint8], Shape(200 * 1024)]
    label: int


@pytest.fixture
def resolver(pds: dict[str, Any]) -> Iterator[Resolver]:
    r = Resolver(plc_url=pds["plc"], handle_resolver_pds=pds["pds"])
    yield r
    r.close()


@pytest.fixture
def published(
    pds: dict[str, Any], tmp_path: Path, resolver: Resolver
) -> Iterator[tuple[AtmosphereClient, Any, Index]]:
    rng = np.random.default_rng(7)
    session = new_account_session(pds, prefix="c")
    with Index(home=tmp_path / "home") as index:
        index.write(
            [Wide(rng.integers(0, 255, 200 * 1024, dtype=np.uint8), i) for i in range(16)],
            "wide",
            maxcount=16,
        )
        done = publish_dataset(index, "wide", to=session)
        yield AtmosphereClient(session, resolver=resolver), done, index


def _rewrite(client: AtmosphereClient, uri: Any, change: Any) -> None:
    stored = client.get_record(uri)
    value = copy.deepcopy(dict(stored.value))
    change(value["storage"]["blobs"][0])
    client.put_record(uri.collection, uri.rkey, value)


def _labels(uri: Any, resolver: Resolver) -> tuple[list[int], BaseException | None]:
    labels: list[int] = []
    with resolver.activate():
        ds = atdata.load_dataset(str(uri), split="train")
        try:
            for batch in ds.ordered(batch_size=2):
                labels.extend(int(v) for v in batch.label)
        except IntegrityError as exc:
            return labels, exc
    return labels, None


def test_published_blobs_carry_chunk_digests_and_load_streamed(
    published: tuple[AtmosphereClient, Any, Index], resolver: Resolver
) -> None:
    client, done, _ = published
    storage = done.entry.value.storage
    assert isinstance(storage, BlobStorage) and len(storage.blobs) == 1
    blob = storage.blobs[0]
    assert blob.chunks is not None and blob.chunks.chunk_size == CHUNK_BYTES
    assert blob.chunks.fits(blob.blob.size) and blob.chunks.count >= 3
    # what the PDS holds says the same
    stored = client.get_entry(done.uri).value.storage
    assert isinstance(stored, BlobStorage) and stored.blobs[0].chunks == blob.chunks
    labels, error = _labels(done.uri, resolver)
    assert error is None and labels == list(range(16))


def test_a_tampered_chunk_digest_stops_the_read_before_that_chunk(
    published: tuple[AtmosphereClient, Any, Index], resolver: Resolver
) -> None:
    client, done, index = published

    def tamper(blob: dict[str, Any]) -> None:
        chunks = ChunkDigests.from_text(blob["chunks"]["size"], blob["chunks"]["digests"])
        raw = bytearray(chunks.digests)
        raw[32] ^= 1  # chunk 1 (bytes 1 MiB .. 2 MiB)
        blob["chunks"]["digests"] = ChunkDigests(chunks.chunk_size, bytes(raw)).to_text()

    _rewrite(client, done.uri, tamper)
    labels, error = _labels(done.uri, resolver)
    assert isinstance(error, IntegrityError) and "chunk 1 " in str(error)
    # only samples lying wholly in chunk 0 can have been yielded, in order
    local = open_source(index.get("wide").shards[0].url)
    in_chunk0 = sum(1 for m, _ in iter_members(local) if m.body_offset + m.size <= CHUNK_BYTES)
    assert 0 < in_chunk0 < 16
    assert labels == list(range(len(labels))) and len(labels) <= in_chunk0


def test_a_record_without_chunk_digests_still_loads(
    published: tuple[AtmosphereClient, Any, Index], resolver: Resolver
) -> None:
    client, done, _ = published
    _rewrite(client, done.uri, lambda blob: blob.pop("chunks"))
    stored = client.get_entry(done.uri).value.storage
    assert isinstance(stored, BlobStorage) and stored.blobs[0].chunks is None
    labels, error = _labels(done.uri, resolver)
    assert error is None and labels == list(range(16))


@pytest.mark.skipif(not VENV07_PYTHON.exists(), reason="benchmarks/.venv07 (atdata 0.7) absent")
def test_atdata07_reads_an_entry_with_chunk_digests(
    published: tuple[AtmosphereClient, Any, Index],
) -> None:
    client, done, _ = published
    value = dict(client.get_record(done.uri).value)
    assert "chunks" in value["storage"]["blobs"][0]
    script = textwrap.dedent(
        """
        import json, sys
        from atdata.atmosphere._lexicon_types import LexDatasetEntry
        entry = LexDatasetEntry.from_record(json.loads(sys.stdin.read()))
        print(entry.name, len(entry.storage.blobs), entry.storage.blobs[0].blob["ref"]["$link"])
        """
    )
    ran = run_under_07(script, stdin=json.dumps(value))
    assert ran.returncode == 0, ran.stderr
    storage = done.entry.value.storage
    assert isinstance(storage, BlobStorage)
    assert ran.stdout.split() == ["wide", "1", storage.blobs[0].blob.cid]
