"""Shards over HTTP(S): streaming reads that resume after drops, Range reads, sidecars.

``http://`` and ``https://`` URLs open as :class:`HttpSource`. Importing this module registers
the schemes but does not import httpx; a source checks that httpx is installed
(``atdata[http]``) and imports it only when it first makes a request, so a shard served from the
shard cache never imports it. Sources without a ``client=`` share one ``httpx.Client`` (one
connection pool) per process and timeout; it is closed at interpreter exit, and a forked worker
makes its own.

- ``open()`` streams the whole shard. A transfer that breaks off (reset, timeout, a body cut
  short) is resumed with ``Range: bytes=<pos>-`` from the first byte not yet returned; the 206
  answer's ``Content-Range`` must start there, and ``If-Range`` carries the first answer's
  ETag (or Last-Modified) so that a shard replaced meanwhile is detected, never spliced. A
  server that ignores Range answers 200 with the whole body; the bytes before ``pos`` are then
  read and discarded.
- ``read_range(start, n)`` asks for exactly those bytes and resumes the same way.
- 5xx, 408, 425, 429 and connection failures are retried with exponential backoff
  (:class:`RetryPolicy`); 404 and other 4xx raise :class:`SourceError` naming
  the URL and the status at once (``read_sidecar`` answers None for 404).
- Redirects are followed by hand, at most ``max_redirects`` hops, and only to ``http(s)``
  URLs; credentials are not forwarded to another origin.
- Deadlines (:class:`~atdata.sources._retry.Deadlines`): ``timeout`` seconds to connect and
  without a byte (default ``$ATDATA_IDLE_TIMEOUT``, else 20), ``total_timeout`` seconds of
  waiting for the server per request, retries included (default ``$ATDATA_TOTAL_TIMEOUT``, else
  600). The shared client's sockets are clamped to the total deadline, so a server trickling its
  headers or body one byte at a time is cut off too. Passing one raises
  :class:`~atdata.sources._retry.DeadlineExceeded` (a SourceError) naming the URL and deadline.
"""

from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import urlsplit, urlunsplit

from .._optional import require
from ..errors import InvalidArgumentError, SourceError
from ..net.transport import TransportError, send, shared_client
from ._retry import (
    Body,
    Deadlines,
    ResumableStream,
    RetryPolicy,
    Transient,
    check_installed,
)
from .base import read_capped, read_range_via, register_scheme

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpSource"]

_RETRY_STATUS = frozenset({408, 425, 429})
_SCHEMES = ("http", "https")


class _NotFound(SourceError):
    """404: the sidecar reader turns this into None."""


class HttpSource:
    """Read access to one shard at an ``http(s)://`` URL.

    ``client`` is an ``httpx.Client`` to use (it is never closed here); without one the source
    uses the process's shared client for its ``timeout`` (made on first use, closed at
    interpreter exit), so that many shards of one server reuse its connections. ``headers`` go
    with every request (for example ``Authorization``); ``timeout`` bounds connecting and each
    read, ``total_timeout`` the waiting for the server of one request, retries included, in
    seconds (None: the environment, else the defaults; see the module docstring).
    """

    def __init__(
        self,
        url: str,
        *,
        client: "httpx.Client | None" = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        total_timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        max_redirects: int = 5,
    ) -> None:
        check_installed("httpx", "http")
        if urlsplit(url).scheme.lower() not in _SCHEMES:
            raise SourceError(f"HttpSource needs an http(s):// URL, got {url!r}")
        self.url = url
        self.retry = retry or RetryPolicy()
        self.deadlines = Deadlines.resolve(timeout, total_timeout)
        self._headers = {"Accept-Encoding": "identity", **(headers or {})}
        self._max_redirects = max_redirects
        self._client = client

    @property
    def _httpx(self) -> Any:
        return require("httpx", "http")

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Nothing to release: the shared pool lives until exit, a passed-in client stays open."""

    def __enter__(self) -> "HttpSource":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HttpSource({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:
        """Picklable for worker processes: the connection pool (and a passed-in client) stay."""
        state = self.__dict__.copy()
        state.pop("_client", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        check_installed("httpx", "http")
        self._client = None

    # -- ShardSource --------------------------------------------------------------------------
    def local_path(self) -> str | None:
        return None

    def open(self) -> BinaryIO:
        """A stream of the whole shard that resumes after dropped connections."""
        return cast(BinaryIO, self._stream(self.url))

    def read_range(self, start: int, length: int) -> bytes:
        """Exactly ``length`` bytes from ``start`` (Range request, retried and resumed)."""
        return read_range_via(
            lambda s, e: self._stream(self.url, start=s, end=e), self.url, start, length
        )

    def read_sidecar(self, suffix: str) -> bytes | None:
        """The bytes at this URL with ``suffix`` added to its path, or None on 404."""
        url = _with_suffix(self.url, suffix)
        try:
            with self._stream(url) as stream:
                return read_capped(cast(BinaryIO, stream), url)
        except _NotFound:
            return None

    def size(self) -> int:
        """The shard's size in bytes (one one-byte Range request)."""
        with self._stream(self.url, start=0, end=1) as stream:
            stream.read(1)
            total = stream.total_size
        if total is None:
            raise SourceError(f"{self.url} does not tell its size (no Content-Length)")
        return total

    # -- transport ----------------------------------------------------------------------------
    def _stream(self, url: str, *, start: int = 0, end: int | None = None) -> ResumableStream:
        self._get_client()  # made (CA certificates loaded) before the deadline's clock starts
        return ResumableStream(
            url, self._opener(url), self.retry, start=start, end=end, deadlines=self.deadlines
        )

    def _get_client(self) -> "httpx.Client":
        client = self._client
        if client is None:
            client = shared_client(self.deadlines.idle)
        return client

    def _opener(self, url: str) -> "_HttpOpener":
        return _HttpOpener(self, url)

    def _send(self, url: str, headers: dict[str, str]) -> "httpx.Response":
        """GET ``url`` as a streamed response, following redirects to http(s) only."""
        try:
            return send(
                self._get_client(), "GET", url, headers=headers, max_redirects=self._max_redirects
            )
        except TransportError as exc:  # chained to the client library's error
            cause = exc.__cause__ or exc
            if exc.transient:
                raise Transient(str(exc), idle=exc.idle) from cause
            raise SourceError(str(exc)) from cause


class _HttpOpener:
    """The Opener of one URL: remembers the first answer's validator to keep resumes honest."""

    def __init__(self, source: HttpSource, url: str) -> None:
        self.source = source
        self.url = url
        self.validator: str | None = None
        self.etag: str | None = None
        self.modified: str | None = None

    def __call__(self, pos: int, end: int | None) -> Body:
        headers = dict(self.source._headers)
        if pos > 0 or end is not None:
            headers["Range"] = f"bytes={pos}-" + ("" if end is None else str(end - 1))
            if self.validator is not None:
                headers["If-Range"] = self.validator
        response = self.source._send(self.url, headers)
        status = response.status_code
        if status in (200, 206):
            try:
                return self._body(response, pos)
            except BaseException:
                response.close()
                raise
        response.close()
        if status >= 500 or status in _RETRY_STATUS:
            raise Transient(f"HTTP {status}", retry_after=_retry_after(response))
        if status == 404:
            raise _NotFound(f"{self.url} not found (HTTP 404)")
        if status == 416:
            size = response.headers.get("Content-Range", "").rpartition("/")[2]
            raise SourceError(
                f"{self.url}: bytes from {pos} lie beyond its end (HTTP 416"
                + (f", size {size})" if size.isdigit() else ")")
            )
        reason = f" {response.reason_phrase}" if response.reason_phrase else ""
        raise SourceError(f"GET {self.url} answered HTTP {status}{reason}")

    def _body(self, response: "httpx.Response", pos: int) -> "_HttpBody":
        h = response.headers
        encoding = h.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise SourceError(f"{self.url} was sent with Content-Encoding {encoding!r}")
        etag = h.get("ETag")
        strong = etag if etag and not etag.startswith("W/") else None
        modified = _valid_date(h.get("Last-Modified"))
        if self.validator is None:
            self.etag, self.modified = strong, modified
            self.validator = strong or modified
        elif strong is not None and self.etag is not None and strong != self.etag:
            raise SourceError(
                f"{self.url} changed while it was being read (ETag {self.etag} -> {strong})"
            )
        elif modified is not None and self.modified is not None and modified != self.modified:
            raise SourceError(
                f"{self.url} changed while it was being read (Last-Modified {self.modified} "
                f"-> {modified})"
            )
        if response.status_code == 206:
            first, total = _content_range(h.get("Content-Range"), self.url)
            if first != pos:
                raise SourceError(
                    f"{self.url}: asked for bytes from {pos}, the server sent them from {first}"
                )
            return _HttpBody(self.source._httpx, response, first, total)
        length = h.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        return _HttpBody(self.source._httpx, response, 0, total)


class _HttpBody:
    def __init__(
        self, httpx: Any, response: "httpx.Response", offset: int, total: int | None
    ) -> None:
        self._httpx = httpx
        self.response = response
        self.offset = offset
        self.total = total
        self._chunks = response.iter_raw()
        self._pending = b""
        self._at = 0  # bytes of _pending already returned (no re-slicing of the rest)

    def read(self, n: int) -> bytes:
        if self._at >= len(self._pending):
            try:
                self._pending, self._at = next(self._chunks, b""), 0
            except self._httpx.HTTPError as exc:  # reset, timeout, body cut short
                idle = isinstance(exc, self._httpx.TimeoutException)
                raise Transient(f"{type(exc).__name__}: {exc}", idle=idle) from exc
        pending, at = self._pending, self._at
        if at == 0 and n >= len(pending):  # the whole chunk: no copy
            self._at = len(pending)
            return pending
        data = pending[at : at + n]
        self._at = at + len(data)
        return data

    def close(self) -> None:
        self.response.close()


def _content_range(value: str | None, url: str) -> tuple[int, int | None]:
    """(first byte, total or None) of ``bytes a-b/total``."""
    try:
        unit, _, spec = (value or "").strip().partition(" ")
        span, _, total = spec.partition("/")
        first = int(span.partition("-")[0])
        if unit.lower() != "bytes":
            raise InvalidArgumentError(unit)
        return first, (None if total.strip() == "*" else int(total))
    except ValueError:
        raise SourceError(f"{url}: 206 answer with a bad Content-Range {value!r}") from None


def _retry_after(response: "httpx.Response") -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _valid_date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return value


def _with_suffix(url: str, suffix: str) -> str:
    """``url`` with ``suffix`` appended to its path (before any query string)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path + suffix))


register_scheme("http", HttpSource)
register_scheme("https", HttpSource)
