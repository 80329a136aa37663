"""Deadlines and retry timing for every network call: how long to wait, how often to retry.

:class:`Deadlines` bound how long one request may wait for a server: ``idle`` seconds for
connecting and for each read, and ``total`` seconds of waiting in all, retries and their backoff
included. Their defaults come from ``$ATDATA_IDLE_TIMEOUT`` and ``$ATDATA_TOTAL_TIMEOUT`` when
set. :func:`waiting` marks the monotonic time by which the network calls of this thread must
end; the transport (:mod:`atdata.net.transport`) clamps every socket operation to it, so a
server trickling one byte at a time is cut off too. :class:`RetryPolicy` is the backoff of
retried requests.
"""

import contextlib
import math
import os
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import InvalidArgumentError, SourceError

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_TOTAL_TIMEOUT",
    "IDLE_TIMEOUT_ENV",
    "TOTAL_TIMEOUT_ENV",
    "DeadlineExceeded",
    "Deadlines",
    "RetryPolicy",
    "waiting",
    "waiting_until",
]

#: Seconds without a byte (and to connect) before a remote read attempt fails.
IDLE_TIMEOUT_ENV = "ATDATA_IDLE_TIMEOUT"
#: Seconds one remote request may wait for its server in all, retries included.
TOTAL_TIMEOUT_ENV = "ATDATA_TOTAL_TIMEOUT"
DEFAULT_IDLE_TIMEOUT = 20.0
DEFAULT_TOTAL_TIMEOUT = 600.0


class DeadlineExceeded(SourceError):
    """A remote read waited longer than its idle or total deadline allows."""


def _env_seconds(name: str, environ: "os._Environ[str] | dict[str, str] | None") -> float | None:
    env = os.environ if environ is None else environ
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise SourceError(f"${name}={text!r}: expected a number of seconds > 0")
    return value


@dataclass(frozen=True)
class Deadlines:
    """How long a remote request may wait for its server (see the module docstring)."""

    idle: float = DEFAULT_IDLE_TIMEOUT
    """Seconds to connect, and without a byte while reading, before an attempt fails."""
    total: float = DEFAULT_TOTAL_TIMEOUT
    """Seconds of waiting for the server in all, over every attempt and backoff."""

    def __post_init__(self) -> None:
        for name in ("idle", "total"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise SourceError(
                    f"Deadlines.{name} must be a number of seconds > 0, got {value!r}"
                )

    @classmethod
    def resolve(
        cls,
        idle: float | None = None,
        total: float | None = None,
        *,
        environ: "dict[str, str] | None" = None,
    ) -> "Deadlines":
        """The deadlines given, else ``$ATDATA_IDLE_TIMEOUT`` / ``$ATDATA_TOTAL_TIMEOUT``,
        else the defaults (20 s idle, 600 s in all).

        >>> Deadlines.resolve(idle=5, environ={"ATDATA_TOTAL_TIMEOUT": "60"})
        Deadlines(idle=5.0, total=60.0)
        """
        if idle is None:
            idle = _env_seconds(IDLE_TIMEOUT_ENV, environ) or DEFAULT_IDLE_TIMEOUT
        if total is None:
            total = _env_seconds(TOTAL_TIMEOUT_ENV, environ) or DEFAULT_TOTAL_TIMEOUT
        return cls(float(idle), float(total))


_WAITING = threading.local()


def waiting_until() -> float | None:
    """The ``time.monotonic()`` by which the network call running in this thread must end, when
    a :class:`ResumableStream` is waiting on it (transports clamp their socket timeouts to it)."""
    return getattr(_WAITING, "until", None)


@contextlib.contextmanager
def waiting(until: float) -> Iterator[None]:
    """Within the block, network calls of this thread must end by ``until`` (monotonic time);
    nested blocks keep the earlier deadline."""
    previous = getattr(_WAITING, "until", None)
    _WAITING.until = until if previous is None else min(until, previous)
    try:
        yield
    finally:
        _WAITING.until = previous


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
            raise InvalidArgumentError("RetryPolicy.attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise InvalidArgumentError("RetryPolicy delays must be >= 0 and the multiplier >= 1")

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, failures - 1))
        wait = base * (1.0 - 0.5 * random.random())
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait
