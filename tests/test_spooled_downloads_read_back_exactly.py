"""A download spooled in memory (as received chunks) or in a temporary file reads back exactly,
from any position, and is bounded by the recorded size or a maximum."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest

from atdata.errors import IntegrityError, SourceError
from atdata.sources.http import HttpSource
from atdata.sources.spool import check_digest, spool_stream
from http_server import FileServer

pytestmark = pytest.mark.services


@pytest.mark.parametrize("in_memory", [0, 64 << 20], ids=["file", "memory"])
def test_a_spool_reads_back_every_range(http_server: FileServer, in_memory: int) -> None:
    data = np.random.default_rng(5).bytes(3_000_001)
    (http_server.root / "x.bin").write_bytes(data)
    url = http_server.url_for("x.bin")
    spool = spool_stream(HttpSource(url).open(), url, in_memory=in_memory)
    assert spool.in_memory == bool(in_memory)
    check_digest(spool, hashlib.sha256(data).hexdigest())
    rng = np.random.default_rng(0)
    for _ in range(200):
        start = int(rng.integers(0, len(data)))
        length = int(rng.integers(0, min(300_000, len(data) - start) + 1))
        assert spool.read_range(start, length) == data[start : start + length]
    with spool.reader() as r:
        assert r.read(10) == data[:10]
        r.seek(-5, io.SEEK_END)
        assert r.read() == data[-5:]
    with spool.reader(owns=True) as r:
        assert r.read() == data
    assert spool.closed


def test_a_spool_is_bounded(http_server: FileServer) -> None:
    (http_server.root / "y.bin").write_bytes(b"z" * 100_000)
    url = http_server.url_for("y.bin")
    with pytest.raises(SourceError, match="larger than 50000"):
        spool_stream(HttpSource(url).open(), url, max_bytes=50_000, in_memory=1 << 20)
    with pytest.raises(IntegrityError, match="record says"):
        spool_stream(HttpSource(url).open(), url, expected_size=99_999)
    with pytest.raises(IntegrityError, match="ended after"):
        spool_stream(io.BytesIO(b"z" * 10), url, expected_size=11)
    spool = spool_stream(HttpSource(url).open(), url, expected_size=100_000)
    with pytest.raises(IntegrityError, match="do not match"):
        check_digest(spool, "0" * 64)
    assert spool.closed
