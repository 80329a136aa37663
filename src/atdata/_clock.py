"""The current time as records store it: one helper for every timestamp the package writes."""

from datetime import UTC, datetime

__all__ = ["utc_now"]


def utc_now(timespec: str = "microseconds") -> str:
    """The current UTC time in RFC 3339 form with a ``Z`` suffix.

    ``timespec`` as in :meth:`datetime.datetime.isoformat`: index records and provider rows
    use ``"microseconds"`` (``2026-01-02T03:04:05.678901Z``); ATProto records use
    ``"milliseconds"``.
    """
    return datetime.now(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
