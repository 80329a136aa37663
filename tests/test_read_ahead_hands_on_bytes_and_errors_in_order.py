"""Read-ahead (atdata.net.readahead): the consumer sees exactly the stream's bytes, then its
error at the same position, and the stream is closed once read or when the reader stops."""

import io
import threading

import pytest

from atdata.errors import SourceError
from atdata.net.readahead import READAHEAD_CHUNK_ENV, READAHEAD_ENV, ReadAhead, read_ahead


class Recording(io.RawIOBase):
    """A stream of ``data`` that fails after it (when ``fail``), recording its closing."""

    def __init__(self, data: bytes, fail: BaseException | None = None) -> None:
        super().__init__()
        self._data = io.BytesIO(data)
        self._fail = fail
        self.closed_by: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        n = self._data.readinto(buffer)
        if not n and self._fail is not None:
            raise self._fail
        return n

    def close(self) -> None:
        if self.closed_by is None:
            self.closed_by = threading.current_thread().name
        super().close()


def _read_all(stream: io.RawIOBase, size: int) -> bytes:
    out = bytearray()
    while chunk := stream.read(size):
        out += chunk
    return bytes(out)


@pytest.mark.parametrize(("chunk", "read"), [(1, 7), (1000, 333), (4096, 1 << 20)])
def test_every_byte_comes_through_in_order(chunk: int, read: int) -> None:
    data = bytes(range(256)) * 40
    inner = Recording(data)
    stream = ReadAhead(inner, chunk=chunk, depth=2)  # type: ignore[arg-type]
    assert _read_all(stream, read) == data
    assert inner.closed_by == "atdata-readahead"  # closed by the reader, before the end was told
    stream.close()


def test_the_streams_error_is_raised_after_its_bytes() -> None:
    data = b"x" * 10_000
    stream = ReadAhead(Recording(data, fail=SourceError("cut off")), chunk=999, depth=3)  # type: ignore[arg-type]
    got = bytearray()
    with pytest.raises(SourceError, match="cut off"):
        while chunk := stream.read(512):
            got += chunk
    assert bytes(got) == data


def test_closing_early_stops_the_reader_and_closes_the_stream() -> None:
    inner = Recording(b"y" * (1 << 20))
    stream = ReadAhead(inner, chunk=1024, depth=2)  # type: ignore[arg-type]
    assert stream.read(10) == b"y" * 10
    stream.close()
    thread = stream._thread
    assert thread is not None
    thread.join(5)
    assert not thread.is_alive() and inner.closed
    with pytest.raises(SourceError, match="closed"):
        stream.read(1)


def test_a_stream_never_read_is_closed_directly() -> None:
    inner = Recording(b"z")
    ReadAhead(inner).close()  # type: ignore[arg-type]
    assert inner.closed and inner.closed_by == threading.current_thread().name


def test_the_environment_turns_it_off_or_sizes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    inner = io.BytesIO(b"abc")
    monkeypatch.setenv(READAHEAD_ENV, "on")
    monkeypatch.setenv(READAHEAD_CHUNK_ENV, "0")
    assert read_ahead(inner) is inner  # a chunk of 0 turns it off whatever the mode
    monkeypatch.setenv(READAHEAD_CHUNK_ENV, "2")
    wrapped = read_ahead(inner)
    assert isinstance(wrapped, ReadAhead) and wrapped._chunk == 2
    wrapped.close()
    monkeypatch.setenv(READAHEAD_CHUNK_ENV, "lots")
    with pytest.raises(SourceError, match=READAHEAD_CHUNK_ENV):
        read_ahead(inner)


def test_a_stream_dropped_without_closing_stops_its_reader() -> None:
    import gc

    inner = Recording(b"w" * (1 << 20))
    stream = ReadAhead(inner, chunk=1024, depth=2)  # type: ignore[arg-type]
    assert stream.read(10) == b"w" * 10
    thread = stream._thread
    assert thread is not None
    del stream
    gc.collect()
    thread.join(5)
    assert not thread.is_alive() and inner.closed


class _ReadOnly(io.RawIOBase):
    """A raw stream that implements read() alone (its readinto() is RawIOBase's unimplemented one)."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = io.BytesIO(data)
        self._step = step

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._data.read(self._step if n is None or n < 0 else min(n, self._step))


def test_a_stream_with_only_read_hands_on_every_byte() -> None:
    data = bytes(range(256)) * 37 + b"tail"  # ends inside the last read, like a truncated shard
    stream = ReadAhead(_ReadOnly(data, step=700), chunk=1000, depth=2)  # type: ignore[arg-type]
    got = bytearray()
    while block := stream.read(333):
        got += block
    stream.close()
    assert bytes(got) == data
