"""The one HTTP transport: pooled httpx clients with deadlines, a redirect policy, redaction.

Every remote path (the http(s) shard source, ``at://`` blob reads, the atmosphere's XRPC
calls) sends its requests through here:

- :func:`shared_client` -- one pooled ``httpx.Client`` per process and idle timeout
  (connection reuse); a process forked from it (a DataLoader worker) makes its own, and each
  process closes its own at exit. It reads no proxy or certificate settings from the
  environment (``trust_env=False``): atdata talks to the hosts it is given.
- :func:`deadline_transport` -- httpx bounds each socket operation, never a whole request; this
  transport clamps every connect, read and write to the deadline of the request waiting on it
  (:func:`~atdata.net.deadlines.waiting`), so a server trickling its headers or body is cut off.
- :func:`send` -- one request, redirects followed by hand: at most ``max_redirects`` hops, only
  to ``http``/``https`` URLs, and ``Authorization``/``Cookie``/``Proxy-Authorization`` are
  dropped when a redirect leaves the origin (scheme, host, port) they were meant for.
  Failures become :class:`TransportError` (``transient`` when a retry may help), with every
  URL in the message passed through :func:`~atdata._redact.redact`.
- :func:`retrying` -- runs an idempotent request again after transient failures, with
  :class:`~atdata.net.deadlines.RetryPolicy` backoff, within a total deadline.

httpx is imported only when a request is made (``atdata[http]`` or ``atdata[atmosphere]``).
"""

import atexit
import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlsplit

from .._optional import require
from .._redact import redact
from ..errors import AtdataError
from .deadlines import RetryPolicy, waiting, waiting_until

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CREDENTIAL_HEADERS",
    "REDIRECT_STATUSES",
    "TransportError",
    "deadline_transport",
    "origin",
    "retrying",
    "send",
    "shared_client",
    "transient",
]

T = TypeVar("T")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_SCHEMES = frozenset({"http", "https"})
SOCKET_READ = 256 << 10
"""Most bytes one socket read takes (httpcore asks for 64 KiB; whatever has arrived is
taken, so a fast body comes in fewer, larger chunks). Client CPU per GB on loopback, median of
3 (benchmarks/RESULTS.md): 64 KiB 0.80 s, 128 KiB 0.67, 256 KiB 0.46-0.48, 512 KiB 0.56,
1 MiB 0.59-0.74: each read allocates its ``bytes`` and h11 copies it twice, and past 256 KiB
those copies leave the cache."""


class TransportError(AtdataError):
    """A request could not be completed: no answer, a refused redirect, a broken transfer.

    ``transient`` says a retry may help (connection failures, timeouts, resets); ``idle`` that
    no byte came within the idle deadline. The message never holds credentials.
    """

    def __init__(self, message: str, *, transient: bool = False, idle: bool = False) -> None:
        super().__init__(redact(message))
        self.transient = transient
        self.idle = idle


def origin(url: str) -> tuple[str, str]:
    """``(scheme, host[:port])`` of ``url``, lower-cased: what credentials are scoped to."""
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.rpartition("@")[2].lower()


# ----------------------------------------------------------------------------- the clients
_SHARED: dict[tuple[int, float, str], "httpx.Client"] = {}
"""The shared clients, by (process id, idle timeout, extra): a forked child never uses its
parent's (their sockets are shared with it)."""
_SHARED_LOCK = threading.Lock()


def shared_client(timeout: float, *, extra: str = "http") -> "httpx.Client":
    """The process's pooled client for ``timeout`` seconds idle (httpx clients are
    thread-safe), made on first use; ``extra`` names the extra that installs httpx."""
    key = (os.getpid(), timeout, extra)
    client = _SHARED.get(key)
    if client is not None:
        return client
    httpx = require("httpx", extra)
    with _SHARED_LOCK:
        client = _SHARED.get(key)
        if client is None:
            # headers go with each request and redirects are followed by hand (send), so the
            # timeout is the only setting a client carries
            client = httpx.Client(
                timeout=httpx.Timeout(timeout),
                follow_redirects=False,
                trust_env=False,
                transport=deadline_transport(extra=extra),
            )
            _SHARED[key] = client
        return client


@atexit.register
def _close_shared_clients() -> None:
    """Close this process's shared clients (never those a forked child inherited)."""
    pid = os.getpid()
    with _SHARED_LOCK:
        clients = [_SHARED.pop(key) for key in [k for k in _SHARED if k[0] == pid]]
    for client in clients:
        with contextlib.suppress(Exception):
            client.close()


# --------------------------------------------------------------------------------- requests
def send(
    client: "httpx.Client",
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str | int] | None = None,
    content: bytes | None = None,
    max_redirects: int = 3,
    stream: bool = True,
) -> "httpx.Response":
    """Send one request, following redirects by the policy above; the caller closes the
    response (``stream=True``: the body is not read yet). Non-2xx answers are returned."""
    httpx = require("httpx", "http")
    hdrs = dict(headers or {})
    start = origin(url)
    for _hop in range(max_redirects + 1):
        try:
            request = client.build_request(
                method, url, headers=hdrs, params=params, content=content
            )
            response = client.send(request, stream=stream, follow_redirects=False)
        except httpx.TimeoutException as exc:
            raise TransportError(
                f"{method} {url}: {type(exc).__name__}: {exc}", transient=True, idle=True
            ) from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise TransportError(
                f"{method} {url}: {type(exc).__name__}: {exc}", transient=True
            ) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise TransportError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code not in REDIRECT_STATUSES or max_redirects == 0:
            return response
        location = response.headers.get("Location")
        response.close()
        if not location:
            raise TransportError(
                f"{method} {url} answered {response.status_code} without a Location"
            )
        target = urljoin(url, location)
        if urlsplit(target).scheme.lower() not in _SCHEMES:
            raise TransportError(f"refusing redirect from {url} to {target!r}: not http(s)")
        if origin(target) != start:
            hdrs = {k: v for k, v in hdrs.items() if k.lower() not in CREDENTIAL_HEADERS}
        if response.status_code == 303:
            method, content = "GET", None
        url, params = target, None
    raise TransportError(f"{method} {url}: more than {max_redirects} redirects")


def retrying(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy | None = None,
    total: float,
    retry_if: Callable[[BaseException], float | None],
) -> T:
    """``fn()`` again after each failure that ``retry_if`` answers with a delay hint (seconds,
    or 0), with backoff, until ``policy.attempts`` tries or ``total`` seconds have passed; the
    last failure is raised. Only for idempotent requests."""
    policy = policy or RetryPolicy(attempts=3)
    until = time.monotonic() + total
    failures = 0
    while True:
        try:
            with waiting(until):
                return fn()
        except Exception as exc:
            hint = retry_if(exc)
            failures += 1
            if hint is None or failures >= policy.attempts:
                raise
            delay = policy.delay(failures, hint or None)
            if time.monotonic() + delay >= until:
                raise
            time.sleep(delay)


def transient(exc: BaseException) -> float | None:
    """The retry hint for :func:`retrying` of a :class:`TransportError`: 0 when transient."""
    return 0.0 if isinstance(exc, TransportError) and exc.transient else None


# ------------------------------------------------------------------------ deadline sockets
def deadline_transport(*, extra: str = "http", **options: Any) -> "httpx.HTTPTransport":
    """An ``httpx.HTTPTransport`` whose sockets never wait past :func:`waiting_until`.

    Clamps the timeout of every connect, read and write to the deadline of the request waiting
    on it (set by ``with waiting(until):``), and fails the operation at once when that has
    passed. ``options`` go to ``httpx.HTTPTransport``.
    """
    lib = require("httpx", extra)
    options.setdefault("trust_env", False)
    transport: httpx.HTTPTransport = lib.HTTPTransport(**options)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is not None:  # httpcore's pool: wrap its network backend
        pool._network_backend = _ClampedBackend(backend)  # type: ignore[union-attr]
    return transport


def _clamped(timeout: float | None, error: str) -> float | None:
    until = waiting_until()
    if until is None:
        return timeout
    left = until - time.monotonic()
    if left <= 0:
        httpcore = require("httpcore", "http")
        raise getattr(httpcore, error)("the request's total deadline has passed")
    return left if timeout is None else min(timeout, left)


class _ClampedBackend:
    """An httpcore network backend whose streams respect the waiting request's deadline."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def connect_tcp(self, *args: Any, **kwargs: Any) -> "_ClampedStream":
        kwargs["timeout"] = _clamped(kwargs.get("timeout"), "ConnectTimeout")
        return _ClampedStream(self._inner.connect_tcp(*args, **kwargs))

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> "_ClampedStream":
        kwargs["timeout"] = _clamped(kwargs.get("timeout"), "ConnectTimeout")
        return _ClampedStream(self._inner.connect_unix_socket(*args, **kwargs))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _ClampedStream:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # httpcore asks for 64 KiB at a time; taking what has arrived, up to SOCKET_READ,
        # makes one parse step (h11 event, iterator hop) per socket read, not per 64 KiB
        size = max(max_bytes, SOCKET_READ)
        data: bytes = self._inner.read(size, _clamped(timeout, "ReadTimeout"))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamped(timeout, "WriteTimeout"))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, *args: Any, **kwargs: Any) -> "_ClampedStream":
        kwargs["timeout"] = _clamped(kwargs.get("timeout"), "ConnectTimeout")
        return _ClampedStream(self._inner.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)
