"""Anonymous HTTP reads for the atmosphere: XRPC queries, DID documents, well-known files.

One seam for network reads that need no login. Every response body is size-capped while it
streams in (a hostile server cannot make us buffer more than we asked for), error bodies are
reduced to a short, printable summary, and httpx exceptions become :class:`XrpcError` /
:class:`~atdata.errors.AtmosphereError`. Only ``http://`` and ``https://`` base URLs are used.

Every GET has an idle deadline (connect, and each read: ``timeout``, default
``$ATDATA_IDLE_TIMEOUT``, else 20 s) and a total one (``total_timeout``, default
``$ATDATA_TOTAL_TIMEOUT``, else 600 s) enforced on every socket operation, headers included:
passing either raises :class:`ReadDeadlineExceeded` naming the URL and the deadline.
"""

import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._optional import require
from ..errors import AtmosphereError
from ..net.deadlines import DeadlineExceeded, Deadlines, waiting
from ..net.error_body import error_summary, printable
from ..net.ids import plain_http_base
from ..net.transport import TransportError, retrying, send, shared_client

if TYPE_CHECKING:
    import httpx

__all__ = [
    "HttpReader",
    "ReadDeadlineExceeded",
    "ServiceUnreachable",
    "XrpcError",
    "check_service_url",
    "printable",
]

USER_AGENT = "atdata-atmosphere"


class XrpcError(AtmosphereError):
    """An XRPC request was answered with an error (``status`` and the XRPC ``error`` name)."""

    def __init__(
        self, message: str, *, status: int | None = None, error: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class ServiceUnreachable(AtmosphereError):
    """A request to an atmosphere service got no complete answer: the connection was refused,
    reset or broke (not a deadline, not an HTTP status)."""


class ReadDeadlineExceeded(AtmosphereError, DeadlineExceeded):
    """A request to an atmosphere service passed its idle or total deadline."""


def check_service_url(url: object, what: str) -> str:
    """``url`` without a trailing slash if it is a plain http(s) base URL, else AtmosphereError."""
    if not isinstance(url, str) or len(url) > 2000:
        raise AtmosphereError(f"{what} must be an http(s) URL, got {url!r:.200}")
    parts = plain_http_base(url)
    if parts is None:
        raise AtmosphereError(
            f"{what} must be a plain http(s) base URL (no credentials, query or fragment), "
            f"got {printable(url, 200)!r}"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise AtmosphereError(f"{what} has a bad port: {printable(url, 200)!r}") from None
    return url.rstrip("/")


class HttpReader:
    """GETs and POSTs with a byte cap per response, through the process's pooled client of
    :mod:`atdata.net.transport` (thread-safe). Idempotent GETs are retried, with backoff, after
    a connection failure; redirects are only followed when a caller asks (DID documents)."""

    def __init__(self, *, timeout: float | None = None, total_timeout: float | None = None) -> None:
        self.deadlines = Deadlines.resolve(timeout, total_timeout)
        self.timeout = self.deadlines.idle

    def _http(self) -> "httpx.Client":
        return shared_client(self.timeout, extra="atmosphere")

    def close(self) -> None:
        """Nothing to release: the pooled client is shared by the process and closed at exit."""

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int,
        what: str,
        follow_redirects: bool = False,
        on_chunk: Callable[[bytes], None] | None = None,
    ) -> bytes:
        """The body of a 2xx answer to GET ``url``; XrpcError for other statuses.

        More than ``max_bytes`` of body (declared or actually sent) raises AtmosphereError
        before the excess is read. ``on_chunk`` sees the body as it arrives (for hashing).
        """
        client = self._http()
        until = time.monotonic() + self.deadlines.total
        hdrs = {"User-Agent": USER_AGENT, **(headers or {})}

        def attempt() -> bytes:
            resp = send(
                client,
                "GET",
                url,
                params=params,
                headers=hdrs,
                max_redirects=3 if follow_redirects else 0,
            )
            try:
                return self._body(resp, max_bytes, what, on_chunk)
            finally:
                resp.close()

        try:
            with waiting(until):
                if on_chunk is not None:  # a consumer saw the bytes: no second try
                    return attempt()
                return retrying(
                    attempt,
                    total=max(0.0, until - time.monotonic()),
                    retry_if=_retry_connect,
                )
        except TransportError as exc:
            raise self._translate(exc, f"GET {printable(url, 200)}", what, until) from (
                exc.__cause__ or exc
            )
        except Exception as exc:
            httpx = require("httpx", "atmosphere")
            if isinstance(exc, httpx.HTTPError):  # while reading the body
                err = TransportError(
                    f"{type(exc).__name__}: {exc}",
                    transient=True,
                    idle=isinstance(exc, httpx.TimeoutException),
                )
                raise self._translate(err, f"GET {printable(url, 200)}", what, until) from exc
            raise

    def _body(
        self,
        resp: "httpx.Response",
        max_bytes: int,
        what: str,
        on_chunk: Callable[[bytes], None] | None,
    ) -> bytes:
        declared = resp.headers.get("content-length")
        if resp.status_code >= 300:
            err_body = _read_capped(resp, 16384, None) or b""
            name, summary = error_summary(resp.status_code, err_body)
            raise XrpcError(f"{what} failed: {summary}", status=resp.status_code, error=name)
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise AtmosphereError(
                f"{what}: the server announced {int(declared)} bytes, more than the "
                f"{max_bytes} allowed"
            )
        body = _read_capped(resp, max_bytes, on_chunk)
        if body is None:
            raise AtmosphereError(f"{what}: the response is larger than {max_bytes} bytes")
        return body

    def _translate(
        self, exc: TransportError, request: str, what: str, until: float
    ) -> AtmosphereError:
        if time.monotonic() >= until:
            return ReadDeadlineExceeded(
                f"{what}: {request} passed its total deadline of "
                f"{self.deadlines.total:g}s; raise it with $ATDATA_TOTAL_TIMEOUT"
            )
        if exc.idle:
            return ReadDeadlineExceeded(
                f"{what}: {request} sent no byte within the idle deadline of "
                f"{self.deadlines.idle:g}s; raise it with $ATDATA_IDLE_TIMEOUT"
            )
        return ServiceUnreachable(f"{what} failed: {printable(str(exc))}")

    def post(
        self,
        url: str,
        *,
        content: bytes,
        headers: Mapping[str, str],
        max_bytes: int,
        what: str,
        expect_json: bool = True,
    ) -> Any:
        """POST ``content`` and return the JSON answer (XrpcError for a non-2xx status).

        Not retried (a procedure may not be idempotent); redirects are not followed.
        """
        client = self._http()
        until = time.monotonic() + self.deadlines.total
        hdrs = {"User-Agent": USER_AGENT, **headers}
        try:
            with waiting(until):
                resp = send(client, "POST", url, content=content, headers=hdrs, max_redirects=0)
                try:
                    body = self._body(resp, max_bytes, what, None)
                finally:
                    resp.close()
        except TransportError as exc:
            raise self._translate(exc, f"POST {printable(url, 200)}", what, until) from (
                exc.__cause__ or exc
            )
        except Exception as exc:
            httpx = require("httpx", "atmosphere")
            if isinstance(exc, httpx.HTTPError):
                err = TransportError(f"{type(exc).__name__}: {exc}", transient=True)
                raise self._translate(err, f"POST {printable(url, 200)}", what, until) from exc
            raise
        if not expect_json:
            return None
        return _parse_json(body, what)

    def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int,
        what: str,
    ) -> Any:
        body = self.get(url, params=params, headers=headers, max_bytes=max_bytes, what=what)
        return _parse_json(body, what)

    def xrpc(
        self,
        service: str,
        nsid: str,
        params: Mapping[str, str | int],
        *,
        headers: Mapping[str, str] | None = None,
        max_bytes: int,
        what: str,
    ) -> dict[str, Any]:
        """GET ``<service>/xrpc/<nsid>`` (an XRPC query) and return its JSON object."""
        data = self.get_json(
            f"{service}/xrpc/{nsid}", params=params, headers=headers, max_bytes=max_bytes, what=what
        )
        if not isinstance(data, dict):
            raise AtmosphereError(f"{what}: expected a JSON object, got {type(data).__name__}")
        return data


def _retry_connect(exc: BaseException) -> float | None:
    """Retry hint for an idempotent GET: a connection that failed (not one that went idle)."""
    if isinstance(exc, TransportError) and exc.transient and not exc.idle:
        return 0.0
    return None


def _read_capped(
    resp: "httpx.Response", max_bytes: int, on_chunk: Callable[[bytes], None] | None
) -> bytes | None:
    """The body, or None (for success bodies) / the first ``max_bytes`` (error bodies) if longer."""
    parts: list[bytes] = []
    total = 0
    for chunk in resp.iter_bytes():
        total += len(chunk)
        if total > max_bytes:
            if on_chunk is None and resp.status_code >= 300:
                parts.append(chunk[: max_bytes - (total - len(chunk))])
                return b"".join(parts)
            return None
        if on_chunk is not None:
            on_chunk(chunk)
        parts.append(chunk)
    return b"".join(parts)


def _parse_json(body: bytes, what: str) -> Any:
    """``body`` parsed as JSON; AtmosphereError naming ``what`` when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise AtmosphereError(f"{what}: the answer is not JSON ({exc})") from None
