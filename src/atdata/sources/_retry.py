"""Retries with backoff, and a read stream that resumes a dropped transfer where it stopped.

Both remote sources (http(s) and s3) read a shard as one long response body. When the body breaks
off (connection reset, read timeout, a proxy cutting the transfer), :class:`ResumableStream`
asks its opener for the rest of the object from the byte where it stopped, so the consumer sees
one uninterrupted stream. The opener is the transport seam: it turns "bytes from ``pos``" into a
:class:`Body` and classifies failures as :class:`Transient` (retry after a backoff) or anything
else (raised at once).

Deadlines (:class:`Deadlines`) bound how long one request may wait for a server: ``idle``
seconds for connecting and for each read (no byte for that long: the attempt fails and is
retried once more at most from where it stopped), and ``total`` seconds of waiting in all,
retries and their backoff included, so that a server trickling one byte a second or stalling
over and over cannot hold a reader forever. Time the consumer spends between reads does not
count. The defaults come from ``ATDATA_IDLE_TIMEOUT`` and ``ATDATA_TOTAL_TIMEOUT`` when set.
"""

import contextlib
import io
import logging
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from .._optional import check_installed  # re-exported: sources/http.py imports it from here
from .._redact import Redacted
from ..errors import InvalidArgumentError, SourceError
from ..net.deadlines import (
    IDLE_TIMEOUT_ENV,
    TOTAL_TIMEOUT_ENV,
    DeadlineExceeded,
    Deadlines,
    RetryPolicy,
    waiting,
    waiting_until,
)

_log = logging.getLogger(__name__)

__all__ = [
    "IDLE_TIMEOUT_ENV",
    "TOTAL_TIMEOUT_ENV",
    "Body",
    "DeadlineExceeded",
    "Deadlines",
    "Opener",
    "ResumableStream",
    "SLOW_READ_SECONDS",
    "RetryPolicy",
    "Transient",
    "check_installed",
    "waiting",
    "waiting_until",
]

#: A remote read that waits longer than this many seconds for its server in all is logged
#: (info) when its stream is closed: a slow download.
SLOW_READ_SECONDS = 30.0
_IDLE_STRIKES = 2
"""Consecutive idle timeouts, without a byte in between, after which a read gives up."""


class Transient(Exception):
    """A failure worth retrying; ``retry_after`` is a server's hint in seconds, if it gave one;
    ``idle`` when no byte came within the idle deadline."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, idle: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.idle = idle


class Body(Protocol):
    """One response body: bytes of the object from ``offset`` on."""

    offset: int
    """Position in the object of the first byte :meth:`read` returns."""
    total: int | None
    """Size of the whole object, when the response told it."""

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (b"" at the end); raises Transient when the transfer breaks."""
        ...

    def close(self) -> None: ...


Opener = Callable[[int, int | None], Body]
"""``opener(pos, end)``: a body for bytes ``[pos, end)`` (``end`` None: to the object's end).

Raises :class:`Transient` for failures worth retrying, SourceError for the others. The body may
start before ``pos`` (a server that ignored the Range header); the stream discards the excess.
"""


class ResumableStream(io.RawIOBase):
    """A read-only binary stream over ``[start, end)`` of a remote object that survives drops.

    ``read(n)`` returns exactly ``n`` bytes unless the object ends first. When the transfer
    breaks, the stream waits per ``policy`` and reopens from the first byte it has not yet
    returned. ``seek`` is supported (it only moves the position; the next read reopens there).
    ``deadlines`` bound the waiting for the server over the stream's life (default:
    :meth:`Deadlines.resolve`); passing one raises :class:`DeadlineExceeded`, naming the URL.
    """

    def __init__(
        self,
        url: str,
        opener: Opener,
        policy: RetryPolicy,
        *,
        start: int = 0,
        end: int | None = None,
        deadlines: Deadlines | None = None,
    ) -> None:
        super().__init__()
        self.url = url
        self.deadlines = deadlines if deadlines is not None else Deadlines.resolve()
        self.waited = 0.0
        """Seconds spent so far waiting for the server (the total deadline's clock)."""
        self._opener = opener
        self._policy = policy
        self._start = start
        self._pos = start
        self._end = end
        self._body: Body | None = None
        self._discard = 0
        self._total: int | None = None
        self._eof = False
        self.reopens = 0
        """How many times the transfer was (re)opened after the first request."""
        self._opened = 0

    # -- io.RawIOBase -------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    @property
    def total_size(self) -> int | None:
        """Size of the whole object once a response has told it (None before the first read)."""
        return self._total

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            if self._total is None:
                raise io.UnsupportedOperation("SEEK_END needs the object size; read first")
            target = self._total + offset
        else:
            raise InvalidArgumentError(f"invalid whence {whence}")
        if target < 0:
            raise InvalidArgumentError("negative seek position")
        if target != self._pos:
            self._drop_body()
            self._pos = target
            self._eof = False
        return self._pos

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        """Fill ``buffer`` like ``read(len(buffer))``, copying each received chunk just once."""
        with memoryview(buffer) as view, view.cast("B") as out:
            n = 0
            for chunk in self._chunks(len(out)):
                out[n : n + len(chunk)] = chunk
                n += len(chunk)
        return n

    def iter_chunks(self) -> Iterator[bytes]:
        """The rest of the stream in the chunks it arrives in (no copy into a buffer)."""
        yield from self._chunks(-1)

    def readall(self) -> bytes:
        return self.read(-1)

    def read(self, size: int | None = -1) -> bytes:
        parts = list(self._chunks(-1 if size is None or size < 0 else size))
        if not parts:
            return b""
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _chunks(self, size: int) -> Iterator[bytes]:
        """The next ``size`` bytes (all that is left when negative) as they arrive."""
        if self.closed:
            raise InvalidArgumentError("read from a closed stream")
        want = size
        if self._end is not None:
            left = max(0, self._end - self._pos)
            want = left if want < 0 else min(want, left)
        if want == 0 or self._eof:
            return
        got = 0
        failures = 0
        idle_strikes = 0
        while want < 0 or got < want:
            try:
                with self._clock():
                    if self._body is None:
                        self._open()
                    body = self._body
                    assert body is not None
                    chunk = body.read(1 << 20 if want < 0 else max(want - got, 0) + self._discard)
            except Transient as exc:
                self._drop_body()
                failures += 1
                idle_strikes = idle_strikes + 1 if exc.idle else 0
                self._check_total(str(exc), exc)
                if idle_strikes >= _IDLE_STRIKES:
                    raise DeadlineExceeded(
                        f"reading {self.url} stalled at byte {self._pos}: no byte within the "
                        f"idle deadline of {self.deadlines.idle:g}s, {idle_strikes} times in a "
                        f"row (raise it with ${IDLE_TIMEOUT_ENV} or the source's idle setting)"
                    ) from (exc.__cause__ or exc)
                if failures >= self._policy.attempts:
                    raise SourceError(
                        f"reading {self.url} failed at byte {self._pos} after {failures} "
                        f"attempts: {exc}"
                    ) from (exc.__cause__ or exc)
                self._sleep(self._policy.delay(failures, exc.retry_after), str(exc), failures)
                continue
            self._check_total("the server sends too slowly")
            if not chunk:
                limit = self._limit()
                if limit is not None and self._pos < limit and self._total is not None:
                    # the body ended early without an error: treat as a dropped transfer
                    self._drop_body()
                    failures += 1
                    if failures >= self._policy.attempts:
                        raise SourceError(
                            f"{self.url} keeps ending at byte {self._pos} of {self._total}"
                        )
                    self._sleep(self._policy.delay(failures), "the body ended early", failures)
                    continue
                self._eof = True
                self._drop_body()
                break
            if self._discard:
                skip = min(self._discard, len(chunk))
                self._discard -= skip
                chunk = chunk[skip:]
                if not chunk:
                    continue
            if want >= 0 and len(chunk) > want - got:
                raise SourceError(f"{self.url} sent more bytes than were asked for")
            failures = idle_strikes = 0
            got += len(chunk)
            self._pos += len(chunk)
            yield chunk

    def close(self) -> None:
        self._drop_body()
        if not self.closed and self.waited > SLOW_READ_SECONDS:
            _log.info(
                "reading %s was slow: %.1fs waiting for the server for %d bytes",
                Redacted(self.url),
                self.waited,
                self._pos,
            )
        super().close()

    # -- internals -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _clock(self) -> Iterator[None]:
        """Time a network call against the total deadline; transports clamp to it meanwhile."""
        started = time.monotonic()
        try:
            with waiting(started + max(0.0, self.deadlines.total - self.waited)):
                yield
        finally:
            self.waited += time.monotonic() - started

    def _check_total(self, why: str, cause: BaseException | None = None) -> None:
        if self.waited >= self.deadlines.total:
            raise self._past_total(why) from (cause.__cause__ or cause) if cause else None

    def _past_total(self, why: str) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"reading {self.url} passed its total deadline of {self.deadlines.total:g}s "
            f"(waited {self.waited:.1f}s for the server, at byte {self._pos}: {why}); raise it "
            f"with ${TOTAL_TIMEOUT_ENV} or the source's total setting"
        )

    def _sleep(self, seconds: float, why: str, failures: int) -> None:
        """Back off before a retry; the wait counts, and a retry that would start after the
        total deadline is not made."""
        if self.waited + seconds >= self.deadlines.total:
            raise self._past_total(f"{why}; the next retry would start after the deadline")
        _log.warning(
            "retrying %s at byte %d in %.2fs (attempt %d of %d failed: %s)",
            Redacted(self.url),
            self._pos,
            seconds,
            failures,
            self._policy.attempts,
            Redacted(why),
        )
        time.sleep(seconds)
        self.waited += seconds

    def _limit(self) -> int | None:
        """Where this stream ends, as far as is known."""
        if self._end is None:
            return self._total
        return self._end if self._total is None else min(self._end, self._total)

    def _open(self) -> None:
        limit = self._limit()
        if self._total is not None and limit is not None and self._pos >= limit:
            self._body = _Empty(self._pos)
            return
        body = self._opener(self._pos, self._end)
        if body.offset > self._pos:
            body.close()
            raise SourceError(
                f"{self.url}: server answered from byte {body.offset}, not {self._pos}"
            )
        if body.total is not None:
            if self._total is not None and body.total != self._total:
                body.close()
                raise SourceError(
                    f"{self.url} changed size from {self._total} to {body.total} bytes while "
                    "it was being read"
                )
            self._total = body.total
        self._discard = self._pos - body.offset
        self._body = body
        if self._opened:
            self.reopens += 1
        self._opened += 1

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        self._discard = 0
        if body is not None:
            # closing a broken transfer must not mask the real error
            with contextlib.suppress(Exception):
                body.close()


class _Empty:
    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.total: int | None = None

    def read(self, n: int) -> bytes:
        return b""

    def close(self) -> None:
        pass
