"""The provider interface: where index records live (SQLite, Redis, PostgreSQL).

A provider is a small transactional key-value store of JSON-compatible records, grouped by
*kind*. It knows nothing about datasets, versions, schemas or CIDs: the
:class:`~atdata.index.Index` facade holds that logic once, for every provider. A provider must
give four guarantees, which the contract suite (``tests/test_provider_contract.py``) checks:

1. **Atomic transactions.** Everything done inside one ``with provider.transaction() as tx:``
   block is applied together on normal exit and not at all when the block raises.
2. **Serializable transactions.** Transactions behave as if run one at a time, across threads
   and processes: a record read in a transaction cannot change under it before it commits
   (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: one advisory transaction lock or SERIALIZABLE with
   retry; Redis: a lock key held for the transaction plus ``MULTI``/``EXEC`` of buffered writes).
   Reads may happen before writes; a transaction sees its own writes.
3. **Sorted scans.** :meth:`Transaction.scan` and :meth:`Provider.scan` return records of one kind
   in ascending order of key, comparing keys by code point (PostgreSQL: ``COLLATE "C"``), and
   page with ``start_after``/``limit``.
4. **Translated errors.** Backend errors surface as :class:`~atdata.errors.IndexUnavailableError`
   (cannot reach / locked too long) or :class:`~atdata.errors.AtdataIndexError`; ``create`` of an
   existing key raises :class:`~atdata.errors.ConflictError`. Nothing from sqlite3, redis or
   psycopg leaks.

Keys are non-empty strings of at most 512 characters; kinds are short lowercase words. Records are
dicts of JSON values (str, int, float, bool, None, list, dict with str keys) and come back equal.
"""

import abc
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from ...errors import AtdataIndexError

__all__ = ["PAGE_SIZE", "Provider", "Record", "Transaction", "check_key", "check_kind"]

Record = dict[str, Any]
PAGE_SIZE = 256
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_MAX_KEY = 512


class Transaction(abc.ABC):
    """Reads and writes inside one atomic, serializable transaction."""

    @abc.abstractmethod
    def get(self, kind: str, key: str) -> Record | None:
        """The record stored under ``(kind, key)``, or None."""

    @abc.abstractmethod
    def scan(
        self,
        kind: str,
        prefix: str = "",
        *,
        start_after: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[str, Record]]:
        """``(key, record)`` pairs of ``kind`` whose key starts with ``prefix``, ascending by key,
        only keys greater than ``start_after`` (when given), at most ``limit`` of them."""

    @abc.abstractmethod
    def put(self, kind: str, key: str, record: Record) -> None:
        """Store ``record`` under ``(kind, key)``, replacing any record there."""

    @abc.abstractmethod
    def create(self, kind: str, key: str, record: Record) -> None:
        """Store ``record`` under a new key; ConflictError when the key already exists."""

    @abc.abstractmethod
    def delete(self, kind: str, key: str) -> bool:
        """Remove ``(kind, key)``; True when something was removed."""


class Provider(abc.ABC):
    """A store of index records. Subclasses: SQLiteProvider; RedisProvider, PostgresProvider."""

    #: A short word naming the backend in messages: "sqlite", "redis", "postgres".
    kind: str = "provider"

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[Transaction]:
        """An atomic, serializable transaction: committed on normal exit, rolled back on error."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. Idempotent; the provider is unusable afterwards."""

    # -- conveniences with default implementations (override when the backend does better) --
    def get(self, kind: str, key: str) -> Record | None:
        """One record, read in its own transaction."""
        with self.transaction() as tx:
            return tx.get(kind, key)

    def scan(
        self,
        kind: str,
        prefix: str = "",
        *,
        start_after: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[str, Record]]:
        """One page of a scan, read in its own transaction."""
        with self.transaction() as tx:
            return tx.scan(kind, prefix, start_after=start_after, limit=limit)

    def iter_scan(
        self, kind: str, prefix: str = "", *, page_size: int = PAGE_SIZE
    ) -> Iterator[tuple[str, Record]]:
        """Every record of ``kind`` under ``prefix``, lazily, one page per transaction.

        Pages are consistent each on its own; a record written during iteration may or may not
        appear, but none appears twice and none that existed throughout is skipped.
        """
        after: str | None = None
        while True:
            page = self.scan(kind, prefix, start_after=after, limit=page_size)
            yield from page
            if len(page) < page_size:
                return
            after = page[-1][0]

    def __enter__(self) -> "Provider":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_kind(kind: str) -> str:
    """Validate a record kind (providers call this; a bad kind is a programming error)."""
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise AtdataIndexError(f"bad record kind {kind!r}: lowercase letters, digits and '_'")
    return kind


def check_key(key: str) -> str:
    """Validate a record key: a non-empty string of at most 512 characters."""
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY:
        raise AtdataIndexError(f"bad record key {key!r}: a non-empty string of at most {_MAX_KEY}")
    return key
