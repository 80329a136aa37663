"""Retries with backoff, and a read stream that resumes a dropped transfer where it stopped.

Both remote sources (http(s) and s3) read a shard as one long response body. When the body breaks
off (connection reset, read timeout, a proxy cutting the transfer), :class:`ResumableStream`
asks its opener for the rest of the object from the byte where it stopped, so the consumer sees
one uninterrupted stream. The opener is the transport seam: it turns "bytes from ``pos``" into a
:class:`Body` and classifies failures as :class:`Transient` (retry after a backoff) or anything
else (raised at once).
"""

import contextlib
import importlib.util
import io
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from ..errors import SourceError

__all__ = ["Body", "Opener", "ResumableStream", "RetryPolicy", "Transient", "check_installed"]


def check_installed(module: str, extra: str) -> None:
    """Raise the ImportError of :func:`atdata._optional.require` unless ``module`` is installed.

    Finds the module without importing it, so a source can be made (and served from the shard
    cache) without paying for the import of a client library it may never need.
    """
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ImportError(
            f"{module!r} is needed for this feature but is not installed; "
            f"install it with: pip install 'atdata[{extra}]'"
        )


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a remote read is retried.

    ``attempts`` bounds the tries of one request (the first included) without progress in
    between: a stream that keeps delivering bytes between failures gets a fresh budget after
    each byte it receives. Delays grow as ``initial_delay * multiplier**n``, capped at
    ``max_delay``, with up to 50% random jitter subtracted so that many readers do not retry in
    lockstep; a server's ``Retry-After`` is honoured up to ``max_delay``.
    """

    attempts: int = 5
    initial_delay: float = 0.2
    max_delay: float = 10.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("RetryPolicy delays must be >= 0 and the multiplier >= 1")

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, failures - 1))
        wait = base * (1.0 - 0.5 * random.random())
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait


class Transient(Exception):
    """A failure worth retrying; ``retry_after`` is a server's hint in seconds, if it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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
    """

    def __init__(
        self,
        url: str,
        opener: Opener,
        policy: RetryPolicy,
        *,
        start: int = 0,
        end: int | None = None,
    ) -> None:
        super().__init__()
        self.url = url
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
            raise ValueError(f"invalid whence {whence}")
        if target < 0:
            raise ValueError("negative seek position")
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
            raise ValueError("read from a closed stream")
        want = size
        if self._end is not None:
            left = max(0, self._end - self._pos)
            want = left if want < 0 else min(want, left)
        if want == 0 or self._eof:
            return
        got = 0
        failures = 0
        while want < 0 or got < want:
            try:
                if self._body is None:
                    self._open()
                body = self._body
                assert body is not None
                chunk = body.read(1 << 20 if want < 0 else max(want - got, 0) + self._discard)
            except Transient as exc:
                self._drop_body()
                failures += 1
                if failures >= self._policy.attempts:
                    raise SourceError(
                        f"reading {self.url} failed at byte {self._pos} after {failures} "
                        f"attempts: {exc}"
                    ) from (exc.__cause__ or exc)
                time.sleep(self._policy.delay(failures, exc.retry_after))
                continue
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
                    time.sleep(self._policy.delay(failures))
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
            failures = 0
            got += len(chunk)
            self._pos += len(chunk)
            yield chunk

    def close(self) -> None:
        self._drop_body()
        super().close()

    # -- internals -----------------------------------------------------------------------------
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
