"""Error response bodies made safe to show: the one summariser of every remote path.

A server's error body is untrusted text: only its XRPC-shaped ``error`` and ``message`` strings
are kept, with non-printable characters replaced and each cut short, so an error message can
neither flood a terminal nor carry control sequences.
"""

import json
import re

__all__ = ["error_summary", "printable"]

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_BODY_LIMIT = 8192


def printable(text: str, limit: int = 300) -> str:
    """``text`` with non-printable characters replaced and cut to ``limit`` characters."""
    text = _UNPRINTABLE.sub("?", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_summary(status: int, body: bytes) -> tuple[str | None, str]:
    """(XRPC error name, printable summary such as ``HTTP 400 InvalidRequest: bad cursor``) of
    an error response; the summary is ``HTTP <status>`` alone when the body says nothing usable."""
    name: str | None = None
    message = ""
    try:
        data = json.loads(body[:_BODY_LIMIT])
    except (ValueError, UnicodeDecodeError, RecursionError):
        data = None
    if isinstance(data, dict):
        if isinstance(data.get("error"), str):
            name = printable(data["error"], 60)
        if isinstance(data.get("message"), str):
            message = printable(data["message"])
    summary = f"HTTP {status}" + (f" {name}" if name else "") + (f": {message}" if message else "")
    return name, summary
