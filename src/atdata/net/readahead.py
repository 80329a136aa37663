"""Read-ahead: a background thread keeps reading a remote stream while the consumer parses.

A remote shard is read as one long response body, and the reader parses each buffer before
asking for the next: without help, the socket idles while Python parses and the parser idles
while bytes arrive. :class:`ReadAhead` wraps a sequential stream; on the first read a daemon
thread starts filling a bounded queue with chunks (at most ``depth`` of them waiting), and
``readinto`` copies them into the consumer's buffer. A stream with ``iter_chunks`` (the remote
sources' :class:`~atdata.sources._retry.ResumableStream`) is queued in the chunks the transport
received, each at most one socket read of 1 MiB, without a copy on this side, so memory stays
at ``1 MiB * (depth + 1)`` per stream; any other stream is read ``chunk`` bytes at a time
(``chunk * (depth + 1)``). A stream that already reads ahead on a thread of its own
(``reads_ahead = True``, e.g. :class:`~atdata.sources.chunked.ChunkVerifiedStream`) is not
wrapped again.

The wrapped stream is used by the thread alone: its deadlines, resumes and retries (a
:class:`~atdata.sources._retry.ResumableStream`) and any hashing wrapped around it run there,
and whatever it raises is raised to the consumer at the same byte position it would have been
raised without read-ahead. The thread closes the wrapped stream as soon as it has read the end
(so its connection goes back to the pool before the consumer opens the next shard), fails, or
is told to stop by :meth:`ReadAhead.close`.

``$ATDATA_READAHEAD_CHUNK`` sets ``chunk`` in bytes (default 256 KiB; streams without
``iter_chunks`` only); ``0`` turns read-ahead off (:func:`read_ahead` then returns the stream
itself).
"""

import contextlib
import io
import os
import queue
import threading
from collections.abc import Iterator
from typing import BinaryIO, cast

from ..errors import InvalidArgumentError, SourceError

__all__ = ["READAHEAD_CHUNK_ENV", "ReadAhead", "read_ahead"]

READAHEAD_CHUNK_ENV = "ATDATA_READAHEAD_CHUNK"
DEFAULT_CHUNK = 256 << 10  # measured best of 256 KiB, 1 MiB, 4 MiB (benchmarks/RESULTS.md)
DEFAULT_DEPTH = 4
_EOF = b""
_POLL = 0.1


def _chunk_from_env() -> int:
    text = os.environ.get(READAHEAD_CHUNK_ENV, "").strip()
    if not text:
        return DEFAULT_CHUNK
    try:
        value = int(text)
    except ValueError:
        raise SourceError(f"${READAHEAD_CHUNK_ENV}={text!r}: expected a number of bytes") from None
    if value < 0:
        raise SourceError(f"${READAHEAD_CHUNK_ENV}={text!r}: expected a number of bytes >= 0")
    return value


def read_ahead(
    stream: BinaryIO, *, chunk: int | None = None, depth: int = DEFAULT_DEPTH
) -> BinaryIO:
    """``stream`` read ahead in the background (or ``stream`` itself when turned off, or when
    it reads ahead on its own thread already: its ``reads_ahead`` attribute is true)."""
    size = _chunk_from_env() if chunk is None else chunk
    if size <= 0 or getattr(stream, "reads_ahead", False) is True:
        return stream
    return cast(BinaryIO, ReadAhead(stream, chunk=size, depth=depth))


Item = memoryview | bytes | BaseException


def _fill(inner: BinaryIO, chunk: int, out: "queue.Queue[Item]", stop: threading.Event) -> None:
    """The filling thread: chunks of ``inner`` into ``out`` until the end, a failure or ``stop``."""
    item: Item = _EOF
    try:
        for data in _chunks(inner, chunk, stop):
            if not _put(out, data, stop):
                return
    except BaseException as exc:  # handed to the consumer, raised where it would have been
        item = exc
    finally:
        with contextlib.suppress(Exception):
            inner.close()  # before the end is announced: the connection is free again
    _put(out, item, stop)


def _chunks(inner: BinaryIO, chunk: int, stop: threading.Event) -> Iterator[memoryview | bytes]:
    """``inner``'s bytes in pieces. A stream with ``iter_chunks`` (a
    :class:`~atdata.sources._retry.ResumableStream`) gives the transport's own chunks (each at
    most one socket read, 1 MiB): no copy and no allocation here, the consumer's ``readinto``
    copies each byte once. Others are read ``chunk`` bytes at a time."""
    iter_chunks = getattr(inner, "iter_chunks", None)
    if iter_chunks is not None:
        for data in iter_chunks():
            if stop.is_set():
                return
            yield data
        return
    readinto = getattr(inner, "readinto", None)
    while not stop.is_set():
        if readinto is not None:
            buf = bytearray(chunk)
            try:
                n = readinto(buf)
            except (NotImplementedError, io.UnsupportedOperation):
                readinto = None  # a stream that only implements read(): use that
                continue
            if not n:
                return
            yield memoryview(buf)[:n]
        else:
            data = inner.read(chunk)
            if not data:
                return
            yield data


def _put(out: "queue.Queue[Item]", item: Item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            out.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


class ReadAhead(io.RawIOBase):
    """A read-only, sequential stream over ``inner`` that reads ahead in a thread."""

    def __init__(self, inner: BinaryIO, *, chunk: int = DEFAULT_CHUNK, depth: int = DEFAULT_DEPTH):
        super().__init__()
        if chunk < 1 or depth < 1:
            raise InvalidArgumentError("read-ahead needs chunk >= 1 and depth >= 1")
        self._inner = inner
        self._chunk = chunk
        self._queue: queue.Queue[Item] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current = memoryview(b"")
        self._done = False

    # -- io.RawIOBase ---------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        if self.closed:
            raise SourceError("read from a closed stream")
        if not self._current:
            if self._done:
                return 0
            if self._thread is None:
                # the thread holds the queue, the event and the inner stream, never self: a
                # ReadAhead dropped without close() is collected, and closing it stops the thread
                self._thread = threading.Thread(
                    target=_fill,
                    args=(self._inner, self._chunk, self._queue, self._stop),
                    name="atdata-readahead",
                    daemon=True,
                )
                self._thread.start()
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            if not item:
                self._done = True
                return 0
            self._current = memoryview(item)
        with memoryview(buffer) as view, view.cast("B") as out:
            n = min(len(out), len(self._current))
            out[:n] = self._current[:n]
        self._current = self._current[n:]
        return n

    def close(self) -> None:
        if self.closed:
            return
        self._stop.set()
        self._current = memoryview(b"")
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        if self._thread is None:
            with contextlib.suppress(Exception):
                self._inner.close()
        super().close()
