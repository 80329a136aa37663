"""Read-ahead: a background thread keeps reading a remote stream while the consumer parses.

A remote shard is read as one long response body, and the reader parses each buffer before
asking for the next: without help, the socket idles while Python parses and the parser idles
while bytes arrive. :class:`ReadAhead` wraps a sequential stream; while it is *engaged* a daemon
thread fills a bounded queue with chunks (at most ``depth`` of them waiting), and ``readinto``
copies them into the consumer's buffer. A stream with ``iter_chunks`` (the remote sources'
:class:`~atdata.sources._retry.ResumableStream`) is taken in the chunks the transport received,
each at most one socket read, without a copy on this side, so memory stays at
``1 MiB * (depth + 1)`` per stream; any other stream is read ``chunk`` bytes at a time
(``chunk * (depth + 1)``). A stream that already reads ahead on a thread of its own
(``reads_ahead = True``, e.g. :class:`~atdata.sources.chunked.ChunkVerifiedStream`) is not
wrapped again.

Modes (``$ATDATA_READAHEAD``): ``off`` (the default) does not wrap the stream; ``on`` engages the
thread on the first read; ``auto`` pays for the thread only while it measures that it helps.
``off`` is the default because nowhere we measured did the thread pay on loopback: with 2
cores ``off`` and ``auto`` were level and ``on`` slower, with 16 cores against a Python server
``off`` moved 0.80x of the bare client, ``auto`` 0.64x and ``on`` 0.61x, and against rclone all
three were level; with added latency the kernel's socket buffer already keeps the link busy
while the reader parses (``benchmarks/RESULTS.md``, ``.planning/netperf2.md``). The thread
costs CPU (queue hand-offs, GIL switches): on a machine whose cores the server, the client and
that thread share, the hand-offs can cost more than the overlap gains. ``auto`` starts reading
inline (the consumer pulls the same chunks itself) and measures, per window of ``WINDOW``
bytes, how long the consumer spent in its pulls and how long between them (parsing). With fewer
than 3 cores only the time it was *blocked* in its pulls counts (the pulls' own CPU work has no
core to run on beside the parser): off-CPU and not queued for a core, from the thread's CPU
time and, on Linux, its run-queue wait (``/proc/thread-self/schedstat``), read twice per
window; time queued for a core counts as neither waiting nor parsing. Read-ahead can save at
most the smaller of the two, so it tries the thread when both are at least ``ENGAGE_SHARE`` of
the window. Engaged, it compares each window's consumer rate (bytes per second, parsing
included; the first window after engaging is a warm-up, not judged) with the inline window's; unless it is ``KEEP_GAIN`` (10 %) faster it hands the
stream back to the consumer (the thread stops between two chunks, nothing is lost or re-read)
and waits 4, 8, 16 ... (at most 64) windows before it may engage again; the next stream from
the same server (scheme, host, port) starts with that wait, so a dataset's shards do not each
pay for the same trial. :attr:`ReadAhead.engagements` counts the times it engaged.

The wrapped stream is used by one thread at a time: its deadlines, resumes and retries (a
:class:`~atdata.sources._retry.ResumableStream`) and any hashing wrapped around it run there,
and whatever it raises is raised to the consumer at the same byte position it would have been
raised without read-ahead. The stream is closed as soon as its end is read (so its connection
goes back to the pool before the consumer opens the next shard), when it fails, or by
:meth:`ReadAhead.close`.

``$ATDATA_READAHEAD_CHUNK`` sets ``chunk`` in bytes (default 256 KiB; streams without
``iter_chunks`` only); ``0`` turns read-ahead off whatever the mode.
"""

import contextlib
import io
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO, Literal, cast
from urllib.parse import urlsplit

from ..errors import InvalidArgumentError, SourceError

__all__ = ["READAHEAD_CHUNK_ENV", "READAHEAD_ENV", "ReadAhead", "read_ahead"]

_log = logging.getLogger(__name__)

READAHEAD_ENV = "ATDATA_READAHEAD"
READAHEAD_CHUNK_ENV = "ATDATA_READAHEAD_CHUNK"
DEFAULT_CHUNK = 256 << 10  # measured best of 256 KiB, 1 MiB, 4 MiB (benchmarks/RESULTS.md)
DEFAULT_DEPTH = 4
WINDOW = 4 << 20
"""Bytes per measuring window of ``auto`` (one reader buffer: ~30 B3 samples)."""
ENGAGE_SHARE = 0.2
"""``auto`` tries the thread when the consumer spent at least this share of a window in its
pulls *and* at least this share parsing between them (the most read-ahead can save is the
smaller of the two)."""
KEEP_GAIN = 1.1
"""Engaged, a window must be this much faster than the inline one for the thread to stay."""
MIN_BACKOFF, MAX_BACKOFF = 4, 64
Mode = Literal["auto", "on", "off"]
_MODES: tuple[Mode, ...] = ("auto", "on", "off")
_EOF = b""
_POLL = 0.1


class _HandBack:
    """Queued by the thread when it stops on request: the consumer reads on from here."""


_HANDBACK = _HandBack()


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


def _mode_from_env() -> Mode:
    text = os.environ.get(READAHEAD_ENV, "").strip().lower() or "off"
    for mode in _MODES:
        if text == mode:
            return mode
    raise SourceError(f"${READAHEAD_ENV}={text!r}: expected one of {', '.join(_MODES)}")


def read_ahead(
    stream: BinaryIO,
    *,
    chunk: int | None = None,
    depth: int = DEFAULT_DEPTH,
    mode: Mode | None = None,
) -> BinaryIO:
    """``stream`` read ahead in the background (or ``stream`` itself when turned off, or when
    it reads ahead on its own thread already: its ``reads_ahead`` attribute is true).
    ``mode`` defaults to ``$ATDATA_READAHEAD`` (``off`` when unset)."""
    size = _chunk_from_env() if chunk is None else chunk
    how = _mode_from_env() if mode is None else mode
    if size <= 0 or how == "off" or getattr(stream, "reads_ahead", False) is True:
        return stream
    return cast(BinaryIO, ReadAhead(stream, chunk=size, depth=depth, mode=how))


Item = memoryview | bytes | BaseException | _HandBack


def _fill(
    source: Iterator[memoryview | bytes],
    inner: BinaryIO,
    out: "queue.Queue[Item]",
    stop: threading.Event,
    handback: threading.Event,
) -> None:
    """The filling thread: ``source``'s chunks into ``out`` until the end, a failure, ``stop``
    (the consumer closed: close ``inner``) or ``handback`` (the consumer reads on itself)."""
    item: Item = _EOF
    try:
        while not stop.is_set():
            if handback.is_set():
                if _put(out, _HANDBACK, stop) and not stop.is_set():
                    return  # the stream is the consumer's again, open
                break  # closed meanwhile: ReadAhead.close may have drained before the put
            data = next(source, _EOF)
            if not data or not _put(out, data, stop):
                break
    except BaseException as exc:  # handed to the consumer, raised where it would have been
        item = exc
    with contextlib.suppress(Exception):
        inner.close()  # before the end is announced: the connection is free again
    _put(out, item, stop)


def _chunks(inner: BinaryIO, chunk: int) -> Iterator[memoryview | bytes]:
    """``inner``'s bytes in pieces. A stream with ``iter_chunks`` (a
    :class:`~atdata.sources._retry.ResumableStream`) gives the transport's own chunks (each at
    most one socket read): no copy and no allocation here, the consumer's ``readinto`` copies
    each byte once. Others are read ``chunk`` bytes at a time. The consumer pulls from it
    inline, or the filling thread does while engaged, never both at once."""
    iter_chunks = getattr(inner, "iter_chunks", None)
    if iter_chunks is not None:
        yield from iter_chunks()
        return
    readinto = getattr(inner, "readinto", None)
    while True:
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


_MEMORY: dict[str, tuple[int, int]] = {}
"""Per origin (scheme://host:port), the (failed, backoff) of the last stream read from it: the
next stream from the same server starts where the last one left off (a shard after a shard)."""
_MEMORY_LOCK = threading.Lock()
_MEMORY_MAX = 64


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _origin(stream: BinaryIO) -> str | None:
    url = getattr(stream, "url", None)
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port}"  # never the userinfo
    except ValueError:
        return None


def _thread_clocks() -> tuple[float, float]:
    """This thread's CPU time and (Linux) the time it spent runnable but waiting for a core.

    Wall time a thread spends neither running nor waiting for a core is time it waited for
    something (the socket, the server): that is what read-ahead can overlap. A loaded machine
    keeps runnable threads waiting for a core, which no thread of ours can hide, so that time is
    not counted as waiting. Read twice per window, never per pull.
    """
    queued = 0.0
    with (
        contextlib.suppress(OSError, ValueError, IndexError),
        open("/proc/thread-self/schedstat", "rb") as f,
    ):
        queued = int(f.read().split()[1]) / 1e9
    return time.thread_time(), queued


class _Gauge:
    """``auto``'s measurements, one window of ``window`` bytes at a time (see the module).
    Windows are contiguous: each starts where the last pull of the previous one ended."""

    def __init__(
        self,
        window: int,
        origin: str | None = None,
        clocks: Callable[[], tuple[float, float]] = _thread_clocks,
    ) -> None:
        self.window = window
        self.clocks = clocks
        # the pulls' own CPU (socket reads, TLS, HTTP framing) can run beside the parser only
        # with a core to spare for it beyond the parser's and (often, on loopback) a server's;
        # on fewer cores only the time a pull waits can overlap
        self.spare_core = _cores() >= 3
        self.first = True  # the first pull waits for the answer's head: not a window's sample
        self.origin = origin
        self.inline_rate = 0.0  # bytes/s of the last inline window (parsing included)
        self.backoff = 0  # inline windows to wait before engaging may be considered
        self.failed = 0  # engagements in a row that did not pay
        self.warming = False  # engaged, the first window is not judged
        if origin is not None:
            with _MEMORY_LOCK:
                self.failed, self.backoff = _MEMORY.get(origin, (0, 0))
        self._reset(None)

    def _remember(self) -> None:
        if self.origin is None:
            return
        with _MEMORY_LOCK:
            _MEMORY.pop(self.origin, None)
            _MEMORY[self.origin] = (self.failed, self.backoff)
            while len(_MEMORY) > _MEMORY_MAX:
                del _MEMORY[next(iter(_MEMORY))]

    def _reset(self, start: float | None, *, inline: bool = False) -> None:
        self.start = start
        self.bytes = 0
        self.pulling = 0.0  # wall time inside pulls
        self.clock0 = self.clocks() if inline else (0.0, 0.0)

    def pulled(self, began: float, ended: float, n: int) -> float | None:
        """Note one pull; at a window's end, its length in seconds (else None)."""
        if self.start is None:
            self.start = began
        self.bytes += n
        self.pulling += ended - began
        if self.bytes < self.window:
            return None
        return max(ended - self.start, 1e-9)

    def inline_window(self, began: float, ended: float, n: int) -> bool:
        """Note an inline pull; whether to engage now."""
        if self.first:
            self.first = False
            self._reset(ended, inline=True)
            return False
        span = self.pulled(began, ended, n)
        if span is None:
            return False
        cpu, queued = (b - a for a, b in zip(self.clock0, self.clocks(), strict=True))
        # off-CPU and not queued for a core: waiting, and (parsing does not wait) in the pulls
        blocked = min(self.pulling, max(0.0, span - cpu - queued))
        self.inline_rate = self.bytes / span
        # between pulls, less any time queued for a core (a loaded machine, not parsing)
        parsing = max(0.0, span - self.pulling - queued)
        overlap = self.pulling if self.spare_core else blocked
        engage = (
            self.backoff == 0 and overlap >= ENGAGE_SHARE * span and parsing >= ENGAGE_SHARE * span
        )
        self.backoff = max(0, self.backoff - 1)
        self.warming = engage
        self._reset(ended, inline=not engage)
        self._remember()
        return engage

    def engaged_window(self, began: float, ended: float, n: int) -> bool:
        """Note a pull from the queue; whether to hand the stream back now (it did not pay).
        The first window after engaging is not judged: the thread has to be scheduled and
        fill the queue first (on a loaded machine that alone can take a window's time)."""
        span = self.pulled(began, ended, n)
        if span is None:
            return False
        if self.warming:
            self.warming = False
            self._reset(ended)
            return False
        rate = self.bytes / span
        paid = rate >= KEEP_GAIN * self.inline_rate
        self._reset(ended, inline=not paid)
        self.failed = max(0, self.failed - 1) if paid else self.failed + 1
        self.backoff = 0 if paid else min(MAX_BACKOFF, MIN_BACKOFF << (self.failed - 1))
        self._remember()
        return not paid


class ReadAhead(io.RawIOBase):
    """A read-only, sequential stream over ``inner`` that reads ahead in a thread (``on``), or
    only while that pays (``auto``; see the module)."""

    def __init__(
        self,
        inner: BinaryIO,
        *,
        chunk: int = DEFAULT_CHUNK,
        depth: int = DEFAULT_DEPTH,
        mode: Mode = "on",
        window: int = WINDOW,
    ):
        super().__init__()
        if chunk < 1 or depth < 1 or window < 1 or mode not in ("auto", "on"):
            raise InvalidArgumentError(
                "read-ahead needs chunk >= 1, depth >= 1, window >= 1 and mode auto or on"
            )
        self._inner = inner
        self._chunk = chunk
        self._queue: queue.Queue[Item] = queue.Queue(depth)
        self._stop = threading.Event()
        self._handback = threading.Event()
        self._thread: threading.Thread | None = None
        self._source: Iterator[memoryview | bytes] | None = None
        self._gauge = _Gauge(window, _origin(inner)) if mode == "auto" else None
        self._current = memoryview(b"")
        self._done = False
        self.mode: Mode = mode
        #: how many times the thread was engaged (``on``: once, at the first read)
        self.engagements = 0

    @property
    def engaged(self) -> bool:
        """Whether a thread is reading ahead now."""
        return self._thread is not None

    # -- io.RawIOBase ---------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        if self.closed:
            raise SourceError("read from a closed stream")
        if not self._current:
            if self._done:
                return 0
            try:
                item = self._pull()
            except BaseException:
                self._done = True  # the stream failed here; nothing comes after its error
                raise
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
        handed_back = False
        with contextlib.suppress(queue.Empty):
            while True:
                handed_back |= self._queue.get_nowait() is _HANDBACK
        if self._thread is None or handed_back:
            # nobody else holds the stream (a thread still reading closes it when it stops)
            with contextlib.suppress(Exception):
                self._inner.close()
        super().close()

    # -- the chunks, from the thread or inline ---------------------------------------------------
    def _pull(self) -> memoryview | bytes:
        """The next chunk (empty at the end); the stream's error where it failed."""
        if self._source is None:
            self._source = _chunks(self._inner, self._chunk)
            if self._gauge is None:
                self._engage()
        while self._thread is not None:
            began = time.perf_counter()
            item = self._queue.get()
            if isinstance(item, _HandBack):
                self._thread.join()
                self._thread = None
                self._handback.clear()
                if self._gauge is not None:  # the next inline window starts here
                    self._gauge._reset(time.perf_counter(), inline=True)
                _log.debug("read-ahead disengaged (backoff %d windows)", self._gauge_backoff())
                break
            if isinstance(item, BaseException):
                raise item
            gauge = self._gauge
            if item and gauge is not None and not self._handback.is_set():  # noqa: SIM102
                if gauge.engaged_window(began, time.perf_counter(), len(item)):
                    self._handback.set()  # the thread stops after what it has queued
            return item
        began = time.perf_counter()
        try:
            item = next(self._source, _EOF)
        except BaseException:
            with contextlib.suppress(Exception):
                self._inner.close()
            raise
        if not item:
            with contextlib.suppress(Exception):
                self._inner.close()
        elif self._gauge is not None and self._gauge.inline_window(
            began, time.perf_counter(), len(item)
        ):
            self._engage()
        return item

    def _gauge_backoff(self) -> int:
        return self._gauge.backoff if self._gauge is not None else 0

    def _engage(self) -> None:
        """Start the filling thread on the rest of the stream."""
        assert self._source is not None and self._thread is None
        # the thread holds the queue, the events, the chunk source and the inner stream, never
        # self: a ReadAhead dropped without close() is collected, and closing it stops the thread
        self._thread = threading.Thread(
            target=_fill,
            args=(self._source, self._inner, self._queue, self._stop, self._handback),
            name="atdata-readahead",
            daemon=True,
        )
        self.engagements += 1
        self._thread.start()
        if self._gauge is not None:
            _log.debug("read-ahead engaged (%d)", self.engagements)

    def _disengage(self) -> None:
        """Ask the thread to stop after what it has queued; the consumer then reads inline."""
        if self._thread is not None:
            self._handback.set()
