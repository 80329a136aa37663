"""The SQLite provider: one file, WAL, one ``BEGIN IMMEDIATE`` transaction per logical operation.

Records live in one table keyed by ``(kind, key)`` with the record as JSON text. Its tables are
created and upgraded by numbered migrations recorded in ``atdata_migrations``, each applied once
inside a write transaction, so several processes opening a fresh file at once agree. Write
transactions take SQLite's write lock up front (``BEGIN IMMEDIATE``) and wait for it up to
``timeout`` seconds, which makes them serializable across processes; reads outside a transaction
use WAL snapshots and never block writers. A connection is opened per process and per thread.
"""

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..._clock import utc_now
from ...errors import AtdataIndexError, ConflictError, IndexUnavailableError
from ._common import dumps_record as _dumps
from ._common import loads_record as _loads
from ._common import refuse_nesting, scan_sql
from .base import Provider, Record, Transaction, check_key, check_kind

__all__ = ["MIGRATIONS", "SQLiteProvider"]

#: Numbered migrations of this provider's tables; append only, never edit one that shipped.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE atdata_records (
                kind TEXT NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (kind, key)
            ) WITHOUT ROWID""",
        ),
    ),
)
_MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS atdata_migrations (
    version INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL
)"""


class SQLiteProvider(Provider):
    """Index records in a SQLite file.

    >>> import tempfile, os
    >>> p = SQLiteProvider(os.path.join(tempfile.mkdtemp(), "index.db"))
    >>> with p.transaction() as tx:
    ...     tx.put("note", "a", {"x": 1})
    >>> p.get("note", "a")
    {'x': 1}
    >>> p.close()
    """

    kind = "sqlite"

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 60.0) -> None:
        self.path = str(path)
        self.timeout = timeout
        self._local = threading.local()
        self._closed = False
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        if self.path != ":memory:":
            try:
                Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
                raise IndexUnavailableError(
                    f"cannot create the directory of {self.path!r}: {exc}"
                ) from exc
        self._connection()  # open now so a bad path fails here, and migrate

    def __repr__(self) -> str:
        return f"SQLiteProvider({self.path!r})"

    @property
    def schema_version(self) -> int:
        """The highest migration applied to this file."""
        with _translated(self.path):
            row = (
                self._connection().execute("SELECT MAX(version) FROM atdata_migrations").fetchone()
            )
        return int(row[0] or 0)

    # -- Provider ----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        refuse_nesting(self, self._local)
        with self._begin("IMMEDIATE") as conn:
            yield _SQLiteTransaction(conn, self.path)

    def get(self, kind: str, key: str) -> Record | None:
        with self._begin("DEFERRED") as conn:
            return _SQLiteTransaction(conn, self.path).get(kind, key)

    def scan(
        self,
        kind: str,
        prefix: str = "",
        *,
        start_after: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[str, Record]]:
        with self._begin("DEFERRED") as conn:
            return _SQLiteTransaction(conn, self.path).scan(
                kind, prefix, start_after=start_after, limit=limit
            )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for pid, conn in self._connections:
                if pid == os.getpid():  # never touch a connection inherited across fork()
                    with contextlib.suppress(sqlite3.Error):  # closing is best effort
                        conn.close()
            self._connections.clear()

    # -- internals ---------------------------------------------------------------------------
    @contextmanager
    def _begin(self, mode: str) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        refuse_nesting(self, self._local)
        with _translated(self.path):
            conn.execute(f"BEGIN {mode}")
        self._local.depth = 1
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # the original error matters more
                conn.execute("ROLLBACK")
            raise
        else:
            with _translated(self.path):
                conn.execute("COMMIT")
        finally:
            self._local.depth = 0

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise AtdataIndexError(f"{self!r} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        with _translated(self.path):
            conn = sqlite3.connect(
                os.path.expanduser(self.path),
                timeout=self.timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
            )
            try:
                _set_up(conn, self.path, self.timeout)
            except BaseException:
                conn.close()
                raise
        self._local.conn = conn
        self._local.pid = os.getpid()
        with self._lock:
            self._connections.append((os.getpid(), conn))
        return conn


class _SQLiteTransaction(Transaction):
    def __init__(self, conn: sqlite3.Connection, where: str) -> None:
        self._conn = conn
        self._where = where

    def get(self, kind: str, key: str) -> Record | None:
        with _translated(self._where):
            row = self._conn.execute(
                "SELECT value FROM atdata_records WHERE kind = ? AND key = ?",
                (check_kind(kind), check_key(key)),
            ).fetchone()
        return None if row is None else _loads(row[0], kind, key)

    def scan(
        self,
        kind: str,
        prefix: str = "",
        *,
        start_after: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[str, Record]]:
        sql, args = scan_sql(
            "SELECT key, value FROM atdata_records WHERE kind = ?",
            kind,
            prefix,
            start_after,
            limit,
            param="?",
        )
        with _translated(self._where):
            rows = self._conn.execute(sql, args).fetchall()
        return [(k, _loads(v, kind, k)) for k, v in rows]

    def put(self, kind: str, key: str, record: Record) -> None:
        with _translated(self._where):
            self._conn.execute(
                "INSERT INTO atdata_records (kind, key, value, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (check_kind(kind), check_key(key), _dumps(record, kind, key), utc_now()),
            )

    def create(self, kind: str, key: str, record: Record) -> None:
        try:
            with _translated(self._where):
                self._conn.execute(
                    "INSERT INTO atdata_records (kind, key, value, updated_at) VALUES (?, ?, ?, ?)",
                    (check_kind(kind), check_key(key), _dumps(record, kind, key), utc_now()),
                )
        except _Duplicate:
            raise ConflictError(f"{kind} {key!r} already exists in {self._where}") from None

    def delete(self, kind: str, key: str) -> bool:
        with _translated(self._where):
            cur = self._conn.execute(
                "DELETE FROM atdata_records WHERE kind = ? AND key = ?",
                (check_kind(kind), check_key(key)),
            )
        return cur.rowcount > 0


class _Duplicate(Exception):
    pass


@contextmanager
def _translated(where: str) -> Iterator[None]:
    """Turn sqlite3 errors into atdata errors that name the database file."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
            raise _Duplicate() from exc
        raise AtdataIndexError(f"index database {where}: {exc}") from exc
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text or "unable to open" in text or "disk I/O" in text:
            raise IndexUnavailableError(
                f"index database {where} is unavailable ({text}); retry, or check that the file "
                "is on a local disk and writable"
            ) from exc
        raise AtdataIndexError(f"index database {where}: {text}") from exc
    except sqlite3.Error as exc:
        raise AtdataIndexError(
            f"index database {where} failed ({exc}); if the file is damaged, restore it from a copy"
        ) from exc


def _set_up(conn: sqlite3.Connection, where: str, timeout: float) -> None:
    """Pragmas and migrations of a new connection.

    Switching a fresh file to WAL takes an exclusive lock for which SQLite does not always call
    the busy handler, so several processes opening a new index at once could see "database is
    locked" at once: those attempts are retried until ``timeout``.
    """
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn, where)
            return
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _migrate(conn: sqlite3.Connection, where: str) -> None:
    """Apply every migration the file lacks, once, under the write lock."""
    latest = MIGRATIONS[-1][0]
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_MIGRATIONS_TABLE)
        current = int(conn.execute("SELECT MAX(version) FROM atdata_migrations").fetchone()[0] or 0)
        if current > latest:
            raise AtdataIndexError(
                f"index database {where} has schema version {current}, newer than this atdata "
                f"understands ({latest}); upgrade atdata"
            )
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO atdata_migrations (version, applied_at) VALUES (?, ?)",
                (version, utc_now()),
            )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
