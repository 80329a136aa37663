"""The PostgreSQL provider: index records in one table, through a psycopg 3 connection pool.

Records live in ``<schema>.atdata_records`` keyed by ``(kind, key)``; ``key`` has
``COLLATE "C"``, so the primary key index orders keys by byte (= code point for UTF-8) and
serves scans, prefixes and pages directly. Records are stored as ``json`` text, which keeps
every record exactly as written (``jsonb`` would turn ``1e300`` into an integer and refuse
``"\\u0000"`` in strings).

**Migrations.** The tables are created and upgraded by numbered :data:`MIGRATIONS` recorded in
``<schema>.atdata_schema_version``. A provider checks the version when it opens; when migrations
are missing it applies them in one transaction under a transaction-scoped advisory lock, so
several processes opening a fresh database at once agree, and a half-applied migration cannot
exist (PostgreSQL DDL is transactional). A database migrated by a newer atdata is refused.

**Transactions.** One database transaction per logical operation: ``transaction()`` runs
``BEGIN``, takes one advisory transaction lock for the schema (``pg_advisory_xact_lock``, waited
for up to ``timeout`` seconds through ``lock_timeout``), runs the reads and writes, and commits;
any error rolls back. Holding one lock from the first read to the commit makes writers
serializable across threads and processes without retry loops (the ``with`` block cannot be
replayed, so SERIALIZABLE isolation, which needs retrying the whole block, does not fit), while
reads outside a transaction (``get``, ``scan``) are single autocommit statements that never
wait for writers. A failed statement never poisons a connection: the transaction is rolled
back before the connection goes back to the pool, and connections the server dropped are
discarded.

**Faults.** When the server goes away, operations raise
:class:`~atdata.errors.IndexUnavailableError` at once (a fresh connection is tried first, so no
operation waits for the pool while the server is down), and the pool is rebuilt when the server
answers again. The pool checks a connection before lending it (psycopg_pool's ``check``, with
``ConnectionPool.check_connection``: one empty query) when it has been idle for more than
a second, so one that died while idle is replaced before any statement is sent on it; one used
within the last second is lent unchecked (a check on every checkout doubled the cost of a
single read).
"""

import contextlib
import os
import re
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ..._optional import require
from ..._redact import redact
from ...errors import AtdataIndexError, ConflictError, IndexUnavailableError
from ._common import (
    dumps_record,
    refuse_nesting,
    scan_sql,
    server_failed,
    server_unavailable,
    while_doing,
)
from ._common import loads_record as _loads
from .base import Provider, Record, Transaction, check_key, check_kind

__all__ = ["MIGRATIONS", "PostgresProvider"]

#: Numbered migrations; ``{schema}`` is the quoted schema name. Append only, never edit one
#: that shipped.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE {schema}.atdata_records (
                kind text NOT NULL,
                key text COLLATE "C" NOT NULL,
                value json NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (kind, key)
            )""",
        ),
    ),
)
_VERSION_TABLE = """CREATE TABLE {schema}.atdata_schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_WRITE_LOCK_CLASS = 0x61746461  # "atda": the writers' lock of one schema
_MIGRATE_LOCK_CLASS = 0x61746462  # "atdb": the migrations' lock of one schema
_CHECK_IDLE_AFTER = 1.0  # seconds: a connection idle longer is checked before it is lent
T = TypeVar("T")


class PostgresProvider(Provider):
    """Index records in a PostgreSQL database.

    ``dsn`` is a libpq connection string or URL (``postgresql://user:pass@host:5432/db``).
    ``schema`` is the schema holding the tables (created when missing). ``timeout`` bounds the
    wait for a pooled connection and for the writers' lock; ``max_size`` caps the pool.
    The server is contacted, and the tables migrated, when the provider is created.
    """

    kind = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self._psycopg: Any = require("psycopg", "postgres")
        self._pool_mod: Any = require("psycopg_pool", "postgres")
        if not isinstance(schema, str) or not _SCHEMA.match(schema):
            raise AtdataIndexError(
                f"bad PostgreSQL schema name {schema!r}: lowercase letters, digits and '_'"
            )
        self.dsn = dsn
        self.where = redact(dsn)
        self.schema = schema
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self._min_size, self._max_size = max(0, min_size), max(1, max_size, min_size)
        self._lock_id = zlib.crc32(schema.encode()) - (1 << 31)  # a signed int4
        self._q = _queries(f'"{schema}"')
        self._begin = (
            f"BEGIN; SET LOCAL lock_timeout = {max(1, int(self.timeout * 1000))}; "
            f"SELECT pg_advisory_xact_lock({_WRITE_LOCK_CLASS}, {self._lock_id})"
        )
        self._local = threading.local()
        self._guard = threading.Lock()
        self._pool: Any = None
        self._pid = os.getpid()
        self._down = True  # until a first connection succeeds: probe before building the pool
        self._closed = False
        self._orphans: list[Any] = []  # pools inherited across fork: never closed from here
        self._check = _IdleCheck(self._pool_mod.ConnectionPool.check_connection)
        try:
            self._migrate()
        except BaseException:
            self.close()  # never leave a pool for the garbage collector to stop from its thread
            raise

    def __repr__(self) -> str:
        return f"PostgresProvider({self.where!r}, schema={self.schema!r})"

    @property
    def schema_version(self) -> int:
        """The highest migration applied to this database."""
        return int(self._read(lambda c: c.execute(self._q["version"]).fetchone()[0]) or 0)

    # -- Provider ----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        refuse_nesting(self, self._local)
        self._local.depth = 1
        try:
            with self._session(self._begin) as conn:
                tx = _PostgresTransaction(self, conn)
                try:
                    yield tx
                finally:
                    tx.closed = True
        finally:
            self._local.depth = 0

    # get and scan outside a transaction: the transaction's own statements, run on one pooled
    # connection in autocommit; arguments are checked before a connection is taken.
    def get(self, kind: str, key: str) -> Record | None:
        check_kind(kind)
        check_key(key)
        return self._read(lambda c: _PostgresTransaction(self, c).get(kind, key))

    def scan(
        self,
        kind: str,
        prefix: str = "",
        *,
        start_after: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[str, Record]]:
        self._scan_query(kind, prefix, start_after, limit)
        if limit is not None and limit <= 0:
            return []
        return self._read(
            lambda c: _PostgresTransaction(self, c).scan(
                kind, prefix, start_after=start_after, limit=limit
            )
        )

    def close(self) -> None:
        with self._guard:
            if self._closed:
                return
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):  # closing is best effort
                pool.close(timeout=5.0)

    # -- diagnostics -------------------------------------------------------------------------
    def server_settings(self) -> dict[str, Any]:
        """Facts for ``atdata diagnose``: server version, durability settings, schema version."""
        names = ("server_version", "fsync", "synchronous_commit", "full_page_writes")

        def read(conn: Any) -> dict[str, Any]:
            facts: dict[str, Any] = {}
            for name in names:
                facts[name] = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]
            facts["current_user"] = conn.execute("SELECT current_user").fetchone()[0]
            return facts

        facts = self._read(read)
        facts["schema"] = self.schema
        facts["schema_version"] = self.schema_version
        facts["latest_schema_version"] = MIGRATIONS[-1][0]
        return facts

    # -- internals ---------------------------------------------------------------------------
    def _scan_query(
        self, kind: str, prefix: str, start_after: str | None, limit: int | None
    ) -> tuple[str, list[Any]]:
        return scan_sql(self._q["scan"], kind, prefix, start_after, limit, param="%s", key=_key)

    def _read(self, fn: Callable[[Any], T]) -> T:
        """Run one autocommit read on a pooled connection (checked alive by the pool)."""
        pool = self._get_pool()
        conn = self._getconn(pool)
        try:
            with self._translated():
                return fn(conn)
        finally:
            self._release(pool, conn)

    @contextmanager
    def _session(self, begin: str) -> Iterator[Any]:
        """A pooled connection inside the transaction ``begin`` opens: committed on normal exit,
        rolled back on error. Nothing is retried: the caller's block cannot be replayed."""
        pool = self._get_pool()
        conn = self._getconn(pool)
        try:
            with self._translated("starting a transaction"):
                conn.execute(begin, prepare=False)
        except BaseException:
            self._release(pool, conn)
            raise
        try:
            yield conn
            with self._translated("committing a transaction"):
                conn.execute("COMMIT")
        finally:
            self._release(pool, conn)  # rolls back whatever did not commit

    def _release(self, pool: Any, conn: Any) -> None:
        """Return a connection to its pool clean: rolled back, or discarded when broken."""
        psycopg = self._psycopg
        if (
            not _is_broken(conn)
            and conn.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE
        ):
            with contextlib.suppress(psycopg.Error):  # the original error matters more
                conn.execute("ROLLBACK")
        broken = _is_broken(conn)
        self._check.used(conn)
        pool.putconn(conn)
        if broken:
            self._mark_down(pool)

    def _getconn(self, pool: Any) -> Any:
        """A connection from ``pool``; when none comes quickly, a direct probe tells a server
        that is away (IndexUnavailableError now) from a pool that is busy (wait on)."""
        first = min(self.timeout, self.connect_timeout)
        for attempt, wait in enumerate((first, self.timeout - first)):
            try:
                return pool.getconn(timeout=max(wait, 0.001))
            except self._pool_mod.PoolClosed as exc:
                if self._closed:
                    raise AtdataIndexError(f"{self!r} is closed") from exc
                raise IndexUnavailableError(
                    f"PostgreSQL at {self.where}: the connection pool was being rebuilt after a "
                    "connection failure; retry"
                ) from exc
            except self._pool_mod.PoolTimeout as exc:
                if attempt == 0:
                    try:
                        self._probe()
                    except IndexUnavailableError:
                        self._mark_down(pool)
                        raise
                    if self.timeout > first:
                        continue
                raise IndexUnavailableError(
                    f"PostgreSQL at {self.where}: no connection became free within "
                    f"{self.timeout:g}s (pool of {self._max_size}); retry, or raise max_size"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_pool(self) -> Any:
        with self._guard:
            if self._closed:
                raise AtdataIndexError(f"{self!r} is closed")
            if self._pid != os.getpid():  # forked: the parent's pool is not ours to use
                self._orphans.append(self._pool)
                self._pool, self._pid = None, os.getpid()
            if self._pool is not None and not self._down:
                return self._pool
            if self._down:
                self._probe()  # fail fast while the server is away
                old, self._pool, self._down = self._pool, None, False
                if old is not None:
                    threading.Thread(target=_close_quietly, args=(old,), daemon=True).start()
            pool = self._pool_mod.ConnectionPool(
                self.dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self.timeout,
                kwargs={
                    "autocommit": True,
                    "connect_timeout": max(1, int(self.connect_timeout)),
                    "application_name": "atdata",
                },
                open=False,
                name=f"atdata-{self.schema}",
                check=self._check,
            )
            pool.open(wait=False)
            self._pool = pool
            return pool

    def _mark_down(self, pool: Any) -> None:
        with self._guard:
            if pool is self._pool:
                self._down = True

    def _probe(self) -> None:
        """Connect once, directly: raises IndexUnavailableError when the server is away."""
        psycopg = self._psycopg
        try:
            conn = psycopg.connect(self.dsn, connect_timeout=max(1, int(self.connect_timeout)))
        except psycopg.Error as exc:
            raise server_unavailable(f"PostgreSQL at {self.where}", "", _first_line(exc)) from exc
        conn.close()

    def _migrate(self) -> None:
        """Bring the tables to the latest migration, once, under an advisory lock."""
        latest = MIGRATIONS[-1][0]
        psycopg = self._psycopg
        try:
            current = self.schema_version
        except AtdataIndexError as exc:
            if not isinstance(exc.__cause__, psycopg.errors.UndefinedTable):
                raise
            current = 0
        if current == latest:
            return
        if current > latest:
            raise _too_new(self, current)
        quoted = f'"{self.schema}"'
        with (
            self._session(
                f"BEGIN; SET LOCAL lock_timeout = {max(1, int(self.timeout * 1000))}; "
                f"SELECT pg_advisory_xact_lock({_MIGRATE_LOCK_CLASS}, {self._lock_id})"
            ) as conn,
            self._translated("migrating the index tables"),
        ):
            if (
                conn.execute(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
                ).fetchone()
                is None
            ):
                conn.execute(f"CREATE SCHEMA {quoted}")
            if (
                conn.execute(
                    "SELECT to_regclass(%s)", (f"{quoted}.atdata_schema_version",)
                ).fetchone()[0]
                is None
            ):
                conn.execute(_VERSION_TABLE.format(schema=quoted))
            current = int(conn.execute(self._q["version"]).fetchone()[0] or 0)
            if current > latest:
                raise _too_new(self, current)
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    conn.execute(statement.format(schema=quoted))
                conn.execute(
                    f"INSERT INTO {quoted}.atdata_schema_version (version) VALUES (%s)",
                    (version,),
                )

    @contextmanager
    def _translated(self, doing: str = "") -> Iterator[None]:
        """Turn psycopg errors into atdata errors that name the server."""
        psycopg = self._psycopg
        errors = psycopg.errors
        where = f"PostgreSQL at {self.where} (schema {self.schema!r})"
        what = while_doing(doing)
        try:
            yield
        except errors.LockNotAvailable as exc:
            raise IndexUnavailableError(
                f"{where} stayed locked by another writer for {self.timeout:g}s{what}; retry later"
            ) from exc
        except (errors.SerializationFailure, errors.DeadlockDetected) as exc:
            raise IndexUnavailableError(
                f"{where}: a concurrent writer got in the way{what}; retry"
            ) from exc
        except errors.InsufficientPrivilege as exc:
            raise AtdataIndexError(
                f"{where} denied access{what}: {_first_line(exc)}; the user needs USAGE and "
                f"CREATE on schema {self.schema!r} (CREATE on the database to create it)"
            ) from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise server_unavailable(where, what, _first_line(exc)) from exc
        except psycopg.Error as exc:
            raise server_failed(where, what, _first_line(exc)) from exc


class _PostgresTransaction(Transaction):
    def __init__(self, provider: PostgresProvider, conn: Any) -> None:
        self._p = provider
        self._conn = conn
        self.closed = False

    def _execute(self, sql: str, args: Any) -> Any:
        if self.closed:
            raise AtdataIndexError("this transaction is finished; open a new one")
        with self._p._translated():
            return self._conn.execute(sql, args)

    def get(self, kind: str, key: str) -> Record | None:
        row = self._execute(self._p._q["get"], (check_kind(kind), _key(check_key(key)))).fetchone()
        return None if row is None else _loads(row[0], kind, key)

    def scan(
        self,
        kind: str,
        prefix: str = "",
        *,
        start_after: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[str, Record]]:
        sql, args = self._p._scan_query(kind, prefix, start_after, limit)
        if limit is not None and limit <= 0:
            return []
        rows = self._execute(sql, args).fetchall()
        return [(k, _loads(v, kind, k)) for k, v in rows]

    def put(self, kind: str, key: str, record: Record) -> None:
        args = (check_kind(kind), _key(check_key(key)), _dumps(record, kind, key))
        self._execute(self._p._q["put"], args)

    def create(self, kind: str, key: str, record: Record) -> None:
        args = (check_kind(kind), _key(check_key(key)), _dumps(record, kind, key))
        if self._execute(self._p._q["create"], args).rowcount == 0:
            raise ConflictError(f"{kind} {key!r} already exists in {self._p!r}")

    def delete(self, kind: str, key: str) -> bool:
        cur = self._execute(self._p._q["delete"], (check_kind(kind), _key(check_key(key))))
        return bool(cur.rowcount > 0)


def _queries(schema: str) -> dict[str, str]:
    table = f"{schema}.atdata_records"
    return {
        "version": f"SELECT max(version) FROM {schema}.atdata_schema_version",
        "get": f"SELECT value::text FROM {table} WHERE kind = %s AND key = %s",
        "scan": f"SELECT key, value::text FROM {table} WHERE kind = %s",
        "put": f"INSERT INTO {table} (kind, key, value) VALUES (%s, %s, %s::json) "
        "ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
        "create": f"INSERT INTO {table} (kind, key, value) VALUES (%s, %s, %s::json) "
        "ON CONFLICT (kind, key) DO NOTHING",
        "delete": f"DELETE FROM {table} WHERE kind = %s AND key = %s",
    }


def _too_new(provider: PostgresProvider, current: int) -> AtdataIndexError:
    return AtdataIndexError(
        f"the index in PostgreSQL at {provider.where} (schema {provider.schema!r}) has schema "
        f"version {current}, newer than this atdata understands ({MIGRATIONS[-1][0]}); "
        "upgrade atdata"
    )


class _IdleCheck:
    """The pool's ``check``: psycopg_pool's own check, for connections idle a while.

    The pool runs it before lending a connection and replaces the connection when it raises.
    A connection returned within the last :data:`_CHECK_IDLE_AFTER` seconds is lent without the
    extra round trip: its server answered it just now.
    """

    def __init__(self, check: Callable[[Any], None]) -> None:
        self._check = check
        self._returned: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def used(self, conn: Any) -> None:
        self._returned[conn] = time.monotonic()

    def __call__(self, conn: Any) -> None:
        returned = self._returned.get(conn)
        if returned is None or time.monotonic() - returned > _CHECK_IDLE_AFTER:
            self._check(conn)


def _is_broken(conn: Any) -> bool:
    return bool(conn.closed or conn.broken)


def _close_quietly(pool: Any) -> None:
    with contextlib.suppress(Exception):
        pool.close(timeout=5.0)


def _key(key: str) -> str:
    """A key PostgreSQL text can hold: valid Unicode without NUL."""
    if "\x00" in key:
        raise AtdataIndexError(f"record key {key!r} contains NUL, which PostgreSQL cannot store")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AtdataIndexError(f"record key {key!r} is not valid Unicode: {exc}") from None
    return key


def _dumps(record: Record, kind: str, key: str) -> str:
    # ensure_ascii: "\u0000" and lone surrogates travel as escapes, which json accepts
    return dumps_record(record, kind, key, ensure_ascii=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
