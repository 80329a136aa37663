"""An at:// blob download has the idle and total deadlines of the other remote sources: a PDS
that trickles or stalls a getBlob answer cannot hold a reader forever.

The PDS is the loopback ``FileServer`` answering ``/xrpc/com.atproto.sync.getBlob`` with a
file, trickling or stalling on request. Deadlines are small so each case ends in about a second.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from atdata.errors import SourceError
from atdata.sources._retry import DeadlineExceeded
from atdata.sources.at import AtBlobSource, blob_url, cid_of_sha256
from http_server import FileServer

DATA = os.urandom(4000)


@pytest.fixture(autouse=True)
def _no_ambient_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATDATA_IDLE_TIMEOUT", raising=False)
    monkeypatch.delenv("ATDATA_TOTAL_TIMEOUT", raising=False)


@pytest.fixture
def blob(http_server: FileServer) -> tuple[FileServer, str]:
    where: Path = http_server.root / "pds" / "xrpc"
    where.mkdir(parents=True)
    (where / "com.atproto.sync.getBlob").write_bytes(DATA)
    cid = cid_of_sha256(hashlib.sha256(DATA).digest())
    return http_server, blob_url("did:plc:abcdefghijklmnopqrstuvwx", cid, f"{http_server.url}/pds")


def test_a_trickling_body_passes_the_total_deadline(blob: tuple[FileServer, str]) -> None:
    server, url = blob
    server.trickle_next(1, interval=0.05)  # well within the idle deadline: only the total trips
    src = AtBlobSource(url, timeout=5.0, total_timeout=1.0)
    with pytest.raises(DeadlineExceeded, match="total deadline of 1s") as info:
        src.fetch()
    assert url in str(info.value) and isinstance(info.value, SourceError)


def test_trickling_headers_pass_the_total_deadline(blob: tuple[FileServer, str]) -> None:
    server, url = blob
    server.trickle_next(1, interval=0.05, headers=True)
    src = AtBlobSource(url, timeout=5.0, total_timeout=1.0)
    with pytest.raises(DeadlineExceeded, match="total deadline") as info:
        with src.open() as stream:
            stream.read()
    assert url in str(info.value)


def test_a_stalled_body_passes_the_idle_deadline(blob: tuple[FileServer, str]) -> None:
    server, url = blob
    server.stall_next(1, after_bytes=100)
    src = AtBlobSource(url, timeout=0.3, total_timeout=30)
    with pytest.raises(DeadlineExceeded, match=r"idle deadline of 0\.3s") as info:
        src.read_range(0, 10)
    assert url in str(info.value)


def test_the_environment_sets_the_deadlines(
    blob: tuple[FileServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = blob
    monkeypatch.setenv("ATDATA_IDLE_TIMEOUT", "0.3")
    monkeypatch.setenv("ATDATA_TOTAL_TIMEOUT", "0.8")
    src = AtBlobSource(url)
    assert (src.deadlines.idle, src.deadlines.total) == (0.3, 0.8)
    server.stall_next(1, after_bytes=0)
    with pytest.raises(DeadlineExceeded, match=r"idle deadline of 0\.3s"):
        src.fetch()
    server.trickle_next(1, interval=0.1)
    with pytest.raises(DeadlineExceeded, match=r"total deadline of 0\.8s"):
        src.fetch()


def test_a_prompt_pds_is_read_whole(blob: tuple[FileServer, str]) -> None:
    _server, url = blob
    src = AtBlobSource(url, timeout=2.0, total_timeout=5.0)
    assert src.fetch() == DATA
    assert src.read_range(100, 50) == DATA[100:150]
