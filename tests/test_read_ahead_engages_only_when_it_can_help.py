"""Adaptive read-ahead (atdata.net.readahead, mode ``auto``) against a real loopback server:
it engages its thread when the consumer both waits for the server and parses between reads,
stays inline against a server that keeps up, hands the stream back and forth without losing or
repeating a byte, surfaces the stream's error after exactly the bytes before it, and leaves no
thread or open stream behind when the reader stops early."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atdata.errors import SourceError
from atdata.net.readahead import READAHEAD_ENV, ReadAhead, read_ahead
from atdata.sources._retry import RetryPolicy
from atdata.sources.http import HttpSource
from http_server import FileServer
from waiting import wait_until

FAST = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.05)
PIECE = 64 << 10


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[FileServer, bytes]]:
    data = os.urandom(2 << 20)
    (tmp_path / "s.tar").write_bytes(data)
    server = FileServer(tmp_path).start()
    try:
        yield server, data
    finally:
        server.stop()


def _consume(stream: ReadAhead, work: float, *, stop_after: int | None = None) -> bytes:
    """Read like the shard reader does (into a buffer), ``work`` seconds of "parsing" per read."""
    out = bytearray()
    buf = bytearray(PIECE)
    while n := stream.readinto(buf):
        out += buf[:n]
        if stop_after is not None and len(out) >= stop_after:
            break
        time.sleep(work)  # the consumer's own work between reads, off the socket
    return bytes(out)


def _open(server: FileServer, **kwargs: object) -> ReadAhead:
    inner = HttpSource(server.url_for("s.tar"), retry=FAST).open()
    return ReadAhead(inner, mode="auto", window=256 << 10, **kwargs)  # type: ignore[arg-type]


def test_it_engages_when_the_consumer_waits_for_a_slow_server(
    served: tuple[FileServer, bytes],
) -> None:
    server, data = served
    server.set_pace(PIECE, 0.03)  # the body arrives 64 KiB per 30 ms: reads wait
    stream = _open(server)
    assert _consume(stream, 0.015) == data
    assert stream.engagements >= 1
    stream.close()


def test_it_stays_inline_when_the_server_keeps_up(served: tuple[FileServer, bytes]) -> None:
    server, data = served
    stream = _open(server)
    # the consumer's work leaves the server time to fill the socket: no read waits
    assert _consume(stream, 0.015) == data
    assert stream.engagements == 0 and not stream.engaged
    stream.close()


def test_it_stays_inline_when_the_consumer_does_no_work(served: tuple[FileServer, bytes]) -> None:
    server, data = served
    server.set_pace(PIECE, 0.01)
    stream = _open(server)
    assert _consume(stream, 0.0) == data  # nothing to overlap the waits with
    assert stream.engagements == 0
    stream.close()


def test_handing_the_stream_back_and_forth_loses_no_byte(served: tuple[FileServer, bytes]) -> None:
    server, data = served
    server.set_pace(16 << 10, 0.002)
    stream = _open(server)
    out = bytearray()
    buf = bytearray(5000)  # reads that end inside the transport's chunks
    switches = 0
    while n := stream.readinto(buf):
        out += buf[:n]
        if len(out) // (128 << 10) > switches:
            switches += 1
            if stream.engaged:
                stream._disengage()  # the thread stops after what it queued
            else:
                stream._engage()
    assert bytes(out) == data
    assert stream.engagements >= 4
    stream.close()


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_the_servers_failure_surfaces_after_the_bytes_before_it(
    served: tuple[FileServer, bytes], mode: str
) -> None:
    server, data = served
    half = len(data) // 2
    server.drop_next(1, after_bytes=half)  # cut mid-body; every retry then fails
    inner = HttpSource(server.url_for("s.tar"), retry=FAST).open()
    stream = ReadAhead(inner, mode=mode, window=256 << 10)  # type: ignore[arg-type]
    out = bytearray(stream.read(1) or b"")
    server.fail_next(10, status=500)
    with pytest.raises(SourceError, match="failed at byte"):
        while block := stream.read(PIECE):
            out += block
            time.sleep(0.001)
    assert bytes(out) == data[:half]
    assert stream.read(PIECE) == b""  # nothing after the error
    stream.close()


def test_stopping_early_while_engaged_ends_the_thread_and_closes_the_stream(
    served: tuple[FileServer, bytes],
) -> None:
    server, data = served
    server.set_pace(PIECE, 0.01)
    inner = HttpSource(server.url_for("s.tar"), retry=FAST).open()
    stream = ReadAhead(inner, mode="auto", window=256 << 10)
    got = _consume(stream, 0.0, stop_after=PIECE)
    assert got == data[: len(got)]
    stream._engage()
    thread = stream._thread
    assert thread is not None and stream.read(10)
    before = threading.active_count()
    stream.close()
    wait_until(lambda: not thread.is_alive(), "the read-ahead thread to end")
    assert inner.closed and threading.active_count() <= before


def test_the_environment_picks_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    inner = io.BytesIO(b"abc")
    monkeypatch.setenv(READAHEAD_ENV, "off")
    assert read_ahead(inner) is inner
    for mode in ("on", "auto"):
        monkeypatch.setenv(READAHEAD_ENV, mode)
        wrapped = read_ahead(inner)
        assert isinstance(wrapped, ReadAhead) and wrapped.mode == mode
        wrapped.close()
    monkeypatch.delenv(READAHEAD_ENV)
    plain = io.BytesIO(b"abc")
    assert read_ahead(plain) is plain  # off unless asked for: it did not pay where measured
    wrapped = read_ahead(io.BytesIO(b"abc"), mode="auto")
    assert isinstance(wrapped, ReadAhead) and wrapped.mode == "auto"
    assert wrapped.read() == b"abc" and wrapped.engagements == 0
    monkeypatch.setenv(READAHEAD_ENV, "sometimes")
    with pytest.raises(SourceError, match=READAHEAD_ENV):
        read_ahead(inner)


def test_the_gauge_tries_the_thread_keeps_it_only_if_it_pays_and_remembers_per_server() -> None:
    """The decision rule on given timings (no clock): 1 MiB windows of 256 KiB pulls."""
    from atdata.net.readahead import _Gauge

    now = {"wall": 0.0, "cpu": 0.0, "queued": 0.0}

    def clocks() -> tuple[float, float]:
        return now["cpu"], now["queued"]

    origin = "http://127.0.0.1:1"  # a port nothing listens on: this test's own memory entry
    gauge = _Gauge(1 << 20, origin, clocks)
    gauge.spare_core = True
    piece = 256 << 10

    def window(
        pull: float, parse: float, *, engaged: bool = False, wait: float = 0.0, queued: float = 0.0
    ) -> bool:
        """Four pulls of ``pull`` s (of which ``wait`` s waiting, ``queued`` s queued for a
        core, the rest on CPU), each followed by ``parse`` s of CPU."""
        decision = False
        for _ in range(4):
            t = now["wall"]
            now["cpu"] += pull - wait - queued
            now["queued"] += queued
            if engaged:
                decision = gauge.engaged_window(t, t + pull, piece)
            else:
                decision = gauge.inline_window(t, t + pull, piece)
            now["wall"] = t + pull + parse
            now["cpu"] += parse
        return decision

    assert not gauge.inline_window(0.0, 0.0, piece)  # the answer's head: not counted
    assert not window(0.001, 0.01)  # pulls ~10 % of the time: nothing worth overlapping
    assert window(0.01, 0.01)  # half and half: try the thread
    assert not window(0.004, 0.01, engaged=True)  # the thread's first window: a warm-up
    assert not window(0.004, 0.01, engaged=True)  # 1.4x faster engaged: kept
    assert window(0.0095, 0.0095, engaged=True)  # 5 % faster is not enough: hand back
    assert gauge.backoff == 4  # and wait 4 windows
    for _ in range(4):
        assert not window(0.01, 0.01)  # waiting out the backoff
    assert window(0.01, 0.01)
    assert not window(0.01, 0.01, engaged=True)  # warm-up
    assert window(0.05, 0.05, engaged=True) and gauge.backoff == 8  # failed again: longer
    # the next stream from the same server starts with that wait
    assert _Gauge(1 << 20, origin, clocks).backoff == 8
    assert _Gauge(1 << 20, "http://127.0.0.1:2", clocks).backoff == 0

    # fewer than 3 cores: only waiting counts, not the pulls' CPU nor time queued for a core
    gauge = _Gauge(1 << 20, None, clocks)
    gauge.spare_core = False
    assert not gauge.inline_window(now["wall"], now["wall"], piece)
    assert not window(0.01, 0.01)  # pulls all CPU: no core to overlap them on
    assert not window(0.01, 0.01, queued=0.008)  # a loaded machine, not a slow server
    assert window(0.01, 0.01, wait=0.005)  # pulls that wait half their time: that overlaps
