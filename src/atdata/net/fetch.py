"""Whole-body GETs through the transport, hashed or spooled as they arrive, within deadlines.

:func:`fetch_body` is the download primitive of the remote paths that read a body in one go
(``at://`` blobs via ``com.atproto.sync.getBlob``): the body goes chunk by chunk to
``on_chunk`` (a hashing spool writer), never more than ``max_bytes`` of it (declared or sent),
and the whole request -- connect, redirects, headers, body -- ends within ``deadlines.total``
seconds, each socket wait within ``deadlines.idle``. Passing either raises
:class:`~atdata.net.deadlines.DeadlineExceeded` naming ``where`` and the deadline.
"""

import time
from collections.abc import Callable, Mapping

from .._optional import require
from ..errors import SourceError
from .deadlines import IDLE_TIMEOUT_ENV, TOTAL_TIMEOUT_ENV, DeadlineExceeded, Deadlines, waiting
from .error_body import error_summary
from .transport import TransportError, send, shared_client

__all__ = ["USER_AGENT", "fetch_body"]

USER_AGENT = "atdata"


def fetch_body(
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    max_bytes: int,
    deadlines: Deadlines,
    where: str,
    on_chunk: Callable[[bytes], object],
    extra: str = "atmosphere",
) -> int:
    """GET ``url`` (up to 3 http(s) redirects) and hand its 200 body to ``on_chunk``; the number
    of bytes. SourceError (naming ``where``) for other statuses, a body over ``max_bytes`` or
    one cut short; DeadlineExceeded past a deadline."""
    require("httpx", extra)
    client = shared_client(deadlines.idle, extra=extra)
    started = time.monotonic()
    until = started + deadlines.total
    # the bytes are hashed as sent: ask for them unencoded and refuse anything else
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity"}
    try:
        with waiting(until):
            response = send(client, "GET", url, headers=headers, params=params, max_redirects=3)
            try:
                if response.status_code != 200:
                    summary = error_summary(response.status_code, _head(response, 4096))[1]
                    raise SourceError(f"cannot fetch {where}: {summary}")
                encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise SourceError(
                        f"cannot fetch {where}: sent with Content-Encoding {encoding[:40]!r}"
                    )
                return _drain(response, max_bytes, where, on_chunk)
            finally:
                response.close()
    except TransportError as exc:
        raise _deadline_or(exc, where, deadlines, started) from exc.__cause__ or exc
    except Exception as exc:
        httpx = require("httpx", extra)
        if isinstance(exc, httpx.HTTPError):  # while reading the body
            idle = isinstance(exc, httpx.TimeoutException)
            err = TransportError(f"{type(exc).__name__}: {exc}", transient=True, idle=idle)
            raise _deadline_or(err, where, deadlines, started) from exc
        raise


def _drain(
    response: object, max_bytes: int, where: str, on_chunk: Callable[[bytes], object]
) -> int:
    declared = response.headers.get("Content-Length")  # type: ignore[attr-defined]
    size = int(declared) if declared and declared.isdigit() else None
    if size is not None and size > max_bytes:
        raise SourceError(
            f"{where} is {size} bytes, more than the {max_bytes} allowed "
            "(raise max_bytes if this is expected)"
        )
    got = 0
    for chunk in response.iter_raw():  # type: ignore[attr-defined]
        got += len(chunk)
        if got > max_bytes:
            raise SourceError(
                f"{where} is larger than {max_bytes} bytes; refusing to download more "
                "(raise max_bytes if this is expected)"
            )
        on_chunk(chunk)
    if size is not None and got != size:
        raise SourceError(f"cannot fetch {where}: the body ended at {got} of {size} bytes")
    return got


def _head(response: object, limit: int) -> bytes:
    out = b""
    for chunk in response.iter_raw():  # type: ignore[attr-defined]
        out += chunk
        if len(out) >= limit:
            break
    return out[:limit]


def _deadline_or(
    exc: TransportError, where: str, deadlines: Deadlines, started: float
) -> SourceError:
    waited = time.monotonic() - started
    if waited >= deadlines.total:
        return DeadlineExceeded(
            f"reading {where} passed its total deadline of {deadlines.total:g}s (waited "
            f"{waited:.1f}s: {exc}); raise it with ${TOTAL_TIMEOUT_ENV} or the source's "
            "total_timeout setting"
        )
    if exc.idle:
        return DeadlineExceeded(
            f"reading {where} stalled: no byte within the idle deadline of {deadlines.idle:g}s "
            f"(raise it with ${IDLE_TIMEOUT_ENV} or the source's timeout setting)"
        )
    return SourceError(f"cannot fetch {where}: {exc}")
