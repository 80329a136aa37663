"""Pieces the SQL and Redis providers share: record JSON, scan bounds, nesting and error text."""

import json
import threading
from collections.abc import Callable
from typing import Any

from ..._redact import redact
from ...errors import AtdataIndexError, IndexUnavailableError
from .base import Record, check_kind

__all__ = [
    "dumps_record",
    "dumps_record_utf8",
    "loads_record",
    "prefix_end",
    "refuse_nesting",
    "scan_sql",
    "server_failed",
    "server_unavailable",
    "while_doing",
]

_MAX_CHAR = chr(0x10FFFF)


def dumps_record(record: Record, kind: str, key: str, *, ensure_ascii: bool = False) -> str:
    """``record`` as compact JSON text; AtdataIndexError when it is not a JSON-compatible dict."""
    if not isinstance(record, dict):
        raise AtdataIndexError(
            f"{kind} {key!r}: a record must be a dict, got {type(record).__name__}"
        )
    try:
        return json.dumps(record, separators=(",", ":"), allow_nan=False, ensure_ascii=ensure_ascii)
    except (TypeError, ValueError) as exc:
        raise AtdataIndexError(f"{kind} {key!r} is not JSON-compatible: {exc}") from exc


def dumps_record_utf8(record: Record, kind: str, key: str) -> bytes:
    """:func:`dumps_record` encoded as UTF-8 (a lone surrogate is not JSON-compatible)."""
    text = dumps_record(record, kind, key)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AtdataIndexError(f"{kind} {key!r} is not JSON-compatible: {exc}") from exc


def loads_record(raw: str | bytes, kind: str, key: str) -> Record:
    """The record stored as JSON ``raw``; AtdataIndexError when it is not a JSON object."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise AtdataIndexError(f"{kind} {key!r} holds malformed JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise AtdataIndexError(f"{kind} {key!r} holds {type(value).__name__}, not a record")
    return value


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: no bound)."""
    stripped = prefix.rstrip(_MAX_CHAR)
    if not stripped:
        return None
    code = ord(stripped[-1]) + 1
    if 0xD800 <= code <= 0xDFFF:  # skip the surrogates, which cannot be encoded
        code = 0xE000
    return stripped[:-1] + chr(code)


def _same(key: str) -> str:
    return key


def scan_sql(
    select: str,
    kind: str,
    prefix: str,
    start_after: str | None,
    limit: int | None,
    *,
    param: str,
    key: Callable[[str], str] = _same,
) -> tuple[str, list[Any]]:
    """The SQL of one scan page: ``select`` (ending in ``WHERE kind = <param>``) narrowed to
    ``prefix`` and ``start_after``, ordered by key, limited; ``key`` checks the bound keys."""
    sql = select
    args: list[Any] = [check_kind(kind)]
    if prefix:
        sql += f" AND key >= {param}"
        args.append(key(prefix))
        end = prefix_end(prefix)
        if end is not None:
            sql += f" AND key < {param}"
            args.append(end)
    if start_after is not None:
        sql += f" AND key > {param}"
        args.append(key(start_after))
    sql += " ORDER BY key"
    if limit is not None:
        sql += f" LIMIT {param}"
        args.append(max(0, int(limit)))
    return sql, args


def refuse_nesting(provider: object, local: threading.local) -> None:
    """AtdataIndexError when this thread already has a transaction of ``provider`` open."""
    if getattr(local, "depth", 0):
        raise AtdataIndexError(f"{provider!r}: transactions do not nest; finish the open one first")


def while_doing(doing: str) -> str:
    """`` while <doing>`` for error messages, or nothing."""
    return f" while {doing}" if doing else ""


def server_unavailable(where: str, what: str, detail: str) -> IndexUnavailableError:
    """The error for a server that cannot be reached (raise it ``from`` the backend's error)."""
    return IndexUnavailableError(
        redact(
            f"{where} is unavailable{what} ({detail}); check that the server is running and "
            "reachable, then retry"
        )
    )


def server_failed(where: str, what: str, detail: str) -> AtdataIndexError:
    """The error for any other failure of a server (raise it ``from`` the backend's error)."""
    return AtdataIndexError(redact(f"{where} failed{what}: {detail}"))
