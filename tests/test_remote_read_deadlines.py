"""A slow or stalled server cannot hold a reader forever: idle and total deadlines per request.

Real loopback servers misbehave on purpose: ``FileServer`` (http) trickles a body or its headers
one byte at a time, or stalls after a few bytes; ``CuttingProxy`` does the same in front of a
real S3 server. Deadlines are set small so that each case ends in about a second. Every failure
is a SourceError naming the URL and the deadline that passed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from atdata.errors import AtmosphereError, SourceError
from atdata.sources._retry import DeadlineExceeded, Deadlines, RetryPolicy
from atdata.sources.http import HttpSource
from atdata.sources.s3 import S3Source
from http_server import FileServer
from tcp_proxy import CuttingProxy

if TYPE_CHECKING:
    from s3_backends import S3Backend

pytest_plugins = ["s3_backends"]

DATA = os.urandom(4000)


@pytest.fixture
def served(http_server: FileServer) -> tuple[FileServer, str]:
    (http_server.root / "shard.tar").write_bytes(DATA)
    return http_server, http_server.url_for("shard.tar")


@pytest.fixture(autouse=True)
def _no_ambient_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATDATA_IDLE_TIMEOUT", raising=False)
    monkeypatch.delenv("ATDATA_TOTAL_TIMEOUT", raising=False)


# -- http(s) ------------------------------------------------------------------------------------
def test_a_body_trickling_one_byte_at_a_time_passes_the_total_deadline(served) -> None:
    server, url = served
    server.trickle_next(5, interval=0.1)  # far below the idle deadline: only the total trips
    src = HttpSource(url, timeout=2.0, total_timeout=1.0)
    with pytest.raises(DeadlineExceeded, match="total deadline of 1s") as info:
        src.read_range(0, len(DATA))
    assert url in str(info.value) and isinstance(info.value, SourceError)
    assert server.count("GET") == 1  # no retry once the deadline passed


def test_headers_trickling_one_byte_at_a_time_pass_the_total_deadline(served) -> None:
    """httpx bounds each socket read only; the deadline reaches inside the header parser."""
    server, url = served
    server.trickle_next(5, interval=0.1, headers=True)
    src = HttpSource(url, timeout=2.0, total_timeout=1.0)
    with pytest.raises(DeadlineExceeded, match="total deadline") as info:
        with src.open() as stream:
            stream.read()
    assert url in str(info.value)


def test_a_stalled_body_passes_the_idle_deadline_and_is_retried_once(served) -> None:
    server, url = served
    server.stall_next(5, after_bytes=0)
    src = HttpSource(url, timeout=0.3, total_timeout=30, retry=RetryPolicy(initial_delay=0.01))
    with pytest.raises(DeadlineExceeded, match=r"idle deadline of 0\.3s") as info:
        with src.open() as stream:
            stream.read()
    message = str(info.value)
    assert url in message and "byte 0" in message
    # the first request and one retry, then it gives up: a stall is not retried `attempts`
    # times over (a stall after some progress starts the count again)
    assert server.count("GET") == 2


def test_a_stall_then_a_good_answer_is_read_whole(served) -> None:
    server, url = served
    server.stall_next(1, after_bytes=100)
    src = HttpSource(url, timeout=0.3, total_timeout=30, retry=RetryPolicy(initial_delay=0.01))
    with src.open() as stream:
        assert stream.read() == DATA


def test_retries_and_their_backoff_respect_the_total_deadline(
    served, caplog: pytest.LogCaptureFixture
) -> None:
    server, url = served
    server.fail_next(100, status=503)
    policy = RetryPolicy(attempts=100, initial_delay=0.3, multiplier=1.0)
    src = HttpSource(url, timeout=2.0, total_timeout=1.0, retry=policy)
    with caplog.at_level("WARNING", logger="atdata"):
        with pytest.raises(DeadlineExceeded, match="total deadline of 1s") as info:
            src.read_range(0, 10)
    assert url in str(info.value)
    # the error names the last failure: a 503, or (on a busy machine) the last attempt cut short
    # by the deadline itself; either way each retry was logged with the server's answer
    assert "HTTP 503" in str(info.value) or "deadline has passed" in str(info.value)
    assert any("HTTP 503" in r.getMessage() for r in caplog.records)
    assert 2 <= server.count("GET") < 10


def test_a_slow_but_steady_server_within_the_deadlines_is_read(served) -> None:
    server, _ = served
    (server.root / "small.tar").write_bytes(DATA[:20])
    server.trickle_next(1, interval=0.02)
    src = HttpSource(server.url_for("small.tar"), timeout=2.0, total_timeout=30)
    assert src.read_range(0, 20) == DATA[:20]


def test_the_environment_sets_the_default_deadlines(
    served, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = served
    monkeypatch.setenv("ATDATA_IDLE_TIMEOUT", "0.3")
    monkeypatch.setenv("ATDATA_TOTAL_TIMEOUT", "45")
    src = HttpSource(url)
    assert src.deadlines == Deadlines(idle=0.3, total=45.0)
    assert HttpSource(url, timeout=5).deadlines == Deadlines(idle=5.0, total=45.0)
    server.stall_next(5, after_bytes=0)
    with pytest.raises(DeadlineExceeded, match=r"idle deadline of 0\.3s"):
        src.read_range(0, 10)
    monkeypatch.setenv("ATDATA_TOTAL_TIMEOUT", "soon")
    with pytest.raises(SourceError, match="ATDATA_TOTAL_TIMEOUT"):
        HttpSource(url)


def test_defaults_are_bounded() -> None:
    d = Deadlines.resolve(environ={})
    assert 0 < d.idle <= 30 and 0 < d.total <= 3600
    with pytest.raises(SourceError):
        Deadlines(idle=0)


# -- the atmosphere reader -------------------------------------------------------------------------
def test_the_atmosphere_reader_has_the_same_deadlines(served) -> None:
    from atdata.atmosphere._http import HttpReader, ReadDeadlineExceeded

    server, url = served
    reader = HttpReader(timeout=2.0, total_timeout=1.0)
    try:
        server.trickle_next(1, interval=0.1)
        with pytest.raises(ReadDeadlineExceeded, match="total deadline of 1s") as info:
            reader.get(url, max_bytes=1 << 20, what="fetching the shard")
        assert url in str(info.value)
        assert isinstance(info.value, AtmosphereError) and isinstance(info.value, SourceError)
        idle = HttpReader(timeout=0.3, total_timeout=30)
        server.stall_next(1, after_bytes=10)
        with pytest.raises(ReadDeadlineExceeded, match=r"idle deadline of 0\.3s"):
            idle.get(url, max_bytes=1 << 20, what="fetching the shard")
        idle.close()
    finally:
        reader.close()


# -- S3, through a proxy in front of a real S3 server ------------------------------------------------
@pytest.mark.services
def test_s3_bodies_that_trickle_or_stall_pass_their_deadlines(
    s3: S3Backend, tmp_path: Path
) -> None:
    key = "deadlines/shard.tar"
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=DATA)
    url = f"s3://{s3.bucket}/{key}"
    with CuttingProxy(s3.port) as proxy:
        config = s3.config.replace(
            endpoint_url=proxy.url,
            read_timeout=0.5,
            total_timeout=1.5,
            retry=RetryPolicy(attempts=3, initial_delay=0.01),
        )
        proxy.trickle_next(key, interval=0.05)
        with pytest.raises(DeadlineExceeded, match=r"total deadline of 1\.5s") as info:
            with S3Source(url, config=config).open() as stream:
                stream.read()
        assert url in str(info.value)

        proxy.stall_next(key, after_body_bytes=100)
        proxy.stall_next(key, after_body_bytes=0)
        with pytest.raises(DeadlineExceeded, match=r"idle deadline of 0\.5s") as info:
            with S3Source(url, config=config.replace(total_timeout=30)).open() as stream:
                stream.read()
        assert url in str(info.value) and "byte 100" in str(info.value)

        # a good answer after one stall is read whole
        proxy.stall_next(key, after_body_bytes=100)
        with S3Source(url, config=config.replace(total_timeout=30)).open() as stream:
            assert stream.read() == DATA
