"""The index database: indexed records, a cursor per followed host, counters.

``sqlite:///path`` (the default, one machine) or ``postgresql://...`` (psycopg). Both take the
same SQL (``?`` placeholders are rewritten for psycopg). Text and tags are searched through a
``terms`` table (one row per lower-cased word of a record's name and description, and per tag),
so a search is an index lookup, not a scan. Text searches are ordered by relevance
(:meth:`IndexStore.search_datasets`), the same on both databases. Every change an event makes and the host's cursor are
written in one transaction (:meth:`IndexStore.apply`): a crash leaves either both or neither.
"""

import base64
import binascii
import contextlib
import json
import queue
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BadCursor",
    "IndexStore",
    "IndexedRecord",
    "Mutation",
    "name_key",
    "open_store",
    "words",
]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
MAX_LIMIT = 100
_TABLE_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,30}\Z")


def words(text: str | None) -> set[str]:
    """The lower-cased words of ``text`` (at most 64 characters each)."""
    return {w[:64] for w in _WORD.findall((text or "").lower())}


def name_key(text: str | None) -> str:
    """``text`` as compared for ranking: its lower-cased words, in order, joined by one space
    (at most 128 characters): "MNIST-Digits v2" -> "mnist digits v2"."""
    return " ".join(w[:64] for w in _WORD.findall((text or "").lower()))[:128]


class BadCursor(ValueError):
    """A page cursor this index did not hand out."""


_RANK_KEY_CHARS = 40  # of createdAt, in a ranked page's cursor


def _encode_cursor(rank: int, created: str, uri: str) -> str:
    raw = json.dumps([rank, created, uri], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        rank, created, uri = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise BadCursor("cursor is not one this index handed out") from None
    if (
        type(rank) is not int
        or not 0 <= rank <= 2
        or not isinstance(created, str)
        or not isinstance(uri, str)
        or len(created) > _RANK_KEY_CHARS
    ):
        raise BadCursor("cursor is not one this index handed out")
    return rank, created, uri


@dataclass(frozen=True)
class IndexedRecord:
    """One record to index: where it is (``uri``, ``did``, ``collection``, ``rkey``), its CID,
    and its validated JSON value."""

    uri: str
    did: str
    collection: str
    rkey: str
    cid: str
    value: dict[str, Any]


@dataclass
class Mutation:
    """What one event changes: records upserted, URIs deleted, counters to add to, and whole
    repositories to replace (a backfill: every record of the DID not in ``upserts`` goes)."""

    upserts: list[IndexedRecord] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    replace_repos: list[str] = field(default_factory=list)
    repo_revs: dict[str, str] = field(default_factory=dict)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


def _name_terms(name: Any) -> set[tuple[str, str]]:
    """The ranking terms of a record's name: ``n`` per word, ``x`` for its :func:`name_key`."""
    if not isinstance(name, str):
        return set()
    key = name_key(name)
    return {("n", w) for w in words(name)} | ({("x", key)} if key else set())


def _schema_clause(param: str, column: str, p: str) -> tuple[str, list[Any]]:
    if param.startswith("at://"):
        return f"{column} = ?", [param]
    return (
        f"{column} IN (SELECT uri FROM {p}records WHERE collection = "
        "'science.alt.dataset.schema' AND (cid = ? OR name = ?))",
        [param, param],
    )


class IndexStore:
    """One index database, through a small pool of connections."""

    def __init__(self, url: str, *, prefix: str = "idx_") -> None:
        if not _TABLE_PREFIX.match(prefix):
            raise ValueError(f"table prefix {prefix!r} must be a short lower-case identifier")
        self.url = url
        self.p = prefix
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        if not self.postgres and not url.startswith("sqlite:///"):
            raise ValueError(f"database URL {url!r:.100} is neither sqlite:/// nor postgresql://")
        self._pool: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._create()

    # -- connections ----------------------------------------------------------------------
    def _new_connection(self) -> Any:
        if self.postgres:
            import psycopg

            return psycopg.connect(self.url, autocommit=False)
        conn = sqlite3.connect(self.url[len("sqlite:///") :], timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """A cursor in one transaction, on a pooled connection (one per concurrent user: the
        server's request threads and the followers share a few)."""
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = self._new_connection()
        cur = conn.cursor()
        try:
            yield cur
            conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise
        finally:
            cur.close()
            if getattr(conn, "closed", False) or self._closed:
                with contextlib.suppress(Exception):
                    conn.close()
            else:
                self._pool.put(conn)

    def _run(self, cur: Any, sql: str, args: Sequence[Any] = ()) -> Any:
        cur.execute(self._sql(sql), tuple(args))
        return cur

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._tx() as cur:
            return list(self._run(cur, sql, args).fetchall())

    def close(self) -> None:
        """Close the pooled connections (one in use is closed when its transaction ends)."""
        self._closed = True
        while True:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(Exception):
                conn.close()

    def _create(self) -> None:
        p = self.p
        big = "BIGINT" if self.postgres else "INTEGER"
        stmts = [
            f"""CREATE TABLE IF NOT EXISTS {p}records (
                uri TEXT PRIMARY KEY, did TEXT NOT NULL, collection TEXT NOT NULL,
                rkey TEXT NOT NULL, cid TEXT NOT NULL, name TEXT, description TEXT,
                schema_ref TEXT, license TEXT, size_bytes {big}, source_schema TEXT,
                target_schema TEXT, created_at TEXT, record TEXT NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {p}records_kind ON {p}records (collection, uri)",
            f"CREATE INDEX IF NOT EXISTS {p}records_did ON {p}records (did)",
            f"CREATE INDEX IF NOT EXISTS {p}records_schema ON {p}records (schema_ref)",
            f"CREATE INDEX IF NOT EXISTS {p}records_cid ON {p}records (cid)",
            f"CREATE INDEX IF NOT EXISTS {p}records_name ON {p}records (name)",
            f"CREATE INDEX IF NOT EXISTS {p}records_lens ON {p}records (source_schema, target_schema)",
            f"""CREATE TABLE IF NOT EXISTS {p}terms (
                kind TEXT NOT NULL, term TEXT NOT NULL, uri TEXT NOT NULL,
                PRIMARY KEY (kind, term, uri))""",
            f"CREATE INDEX IF NOT EXISTS {p}terms_uri ON {p}terms (uri)",
            f"CREATE TABLE IF NOT EXISTS {p}cursors (host TEXT PRIMARY KEY, seq {big} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {p}repos (did TEXT PRIMARY KEY, rev TEXT NOT NULL)",
            f"""CREATE TABLE IF NOT EXISTS {p}counters (
                name TEXT PRIMARY KEY, value {big} NOT NULL)""",
        ]
        with self._tx() as cur:
            for stmt in stmts:
                self._run(cur, stmt)
        self._add_name_terms()

    def _add_name_terms(self) -> None:
        """Give records indexed before name ranking existed their ``n``/``x`` terms (once: a
        database with any ``x`` term, or with no named record, is left alone)."""
        p = self.p
        if self._query(f"SELECT 1 FROM {p}terms WHERE kind = 'x' LIMIT 1"):
            return
        with self._tx() as cur:
            rows = self._run(
                cur, f"SELECT uri, name FROM {p}records WHERE name IS NOT NULL"
            ).fetchall()
            for uri, name in rows:
                for kind, term in sorted(_name_terms(name)):
                    self._run(
                        cur,
                        f"INSERT INTO {p}terms (kind, term, uri) VALUES (?, ?, ?) "
                        "ON CONFLICT DO NOTHING",
                        [kind, term, uri],
                    )

    def drop(self) -> None:
        """Remove this store's tables (tests, and ``--reset``)."""
        with self._tx() as cur:
            for table in ("records", "terms", "cursors", "repos", "counters"):
                self._run(cur, f"DROP TABLE IF EXISTS {self.p}{table}")

    # -- writing ----------------------------------------------------------------------------
    def apply(self, mutation: Mutation, *, host: str | None = None, seq: int | None = None) -> None:
        """Apply ``mutation`` and set ``host``'s cursor to ``seq``, in one transaction."""
        p = self.p
        with self._tx() as cur:
            for did in mutation.replace_repos:
                keep = {r.uri for r in mutation.upserts if r.did == did}
                rows = self._run(cur, f"SELECT uri FROM {p}records WHERE did = ?", [did]).fetchall()
                for (uri,) in rows:
                    if uri not in keep:
                        self._delete(cur, uri)
            for uri in mutation.deletes:
                self._delete(cur, uri)
            for record in mutation.upserts:
                self._upsert(cur, record)
            for did, rev in mutation.repo_revs.items():
                self._upsert_kv(cur, "repos", ("did", "rev"), did, rev)
            for name, n in mutation.counters.items():
                self._run(
                    cur,
                    f"INSERT INTO {p}counters (name, value) VALUES (?, ?) ON CONFLICT (name) "
                    f"DO UPDATE SET value = {p}counters.value + excluded.value",
                    [name, n],
                )
            if host is not None and seq is not None:
                self._upsert_kv(cur, "cursors", ("host", "seq"), host, seq)

    def _upsert_kv(self, cur: Any, table: str, cols: tuple[str, str], k: Any, v: Any) -> None:
        key, col = cols
        self._run(
            cur,
            f"INSERT INTO {self.p}{table} ({key}, {col}) VALUES (?, ?) ON CONFLICT ({key}) "
            f"DO UPDATE SET {col} = excluded.{col}",
            [k, v],
        )

    def _delete(self, cur: Any, uri: str) -> None:
        self._run(cur, f"DELETE FROM {self.p}terms WHERE uri = ?", [uri])
        self._run(cur, f"DELETE FROM {self.p}records WHERE uri = ?", [uri])

    def _upsert(self, cur: Any, r: IndexedRecord) -> None:
        v = r.value
        size = v.get("size")
        size_bytes = size.get("bytes") if isinstance(size, dict) else None
        if not isinstance(size_bytes, int):
            size_bytes = None
        self._delete(cur, r.uri)
        self._run(
            cur,
            f"""INSERT INTO {self.p}records (uri, did, collection, rkey, cid, name, description,
            schema_ref, license, size_bytes, source_schema, target_schema, created_at, record)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                r.uri,
                r.did,
                r.collection,
                r.rkey,
                r.cid,
                v.get("name"),
                v.get("description"),
                v.get("schemaRef"),
                v.get("license"),
                size_bytes,
                v.get("sourceSchema"),
                v.get("targetSchema"),
                v.get("createdAt"),
                json.dumps(v, sort_keys=True),
            ],
        )
        terms = {("w", w) for w in words(v.get("name")) | words(v.get("description"))}
        terms |= {("g", str(t).lower()[:128]) for t in v.get("tags") or ()}
        terms |= _name_terms(v.get("name"))
        for kind, term in sorted(terms):
            self._run(
                cur,
                f"INSERT INTO {self.p}terms (kind, term, uri) VALUES (?, ?, ?)",
                [kind, term, r.uri],
            )

    # -- reading ----------------------------------------------------------------------------
    def cursor(self, host: str) -> int | None:
        rows = self._query(f"SELECT seq FROM {self.p}cursors WHERE host = ?", [host])
        return int(rows[0][0]) if rows else None

    def repo_rev(self, did: str) -> str | None:
        rows = self._query(f"SELECT rev FROM {self.p}repos WHERE did = ?", [did])
        return str(rows[0][0]) if rows else None

    def counters(self) -> dict[str, int]:
        return {str(n): int(v) for n, v in self._query(f"SELECT name, value FROM {self.p}counters")}

    def cursors(self) -> dict[str, int]:
        return {str(h): int(s) for h, s in self._query(f"SELECT host, seq FROM {self.p}cursors")}

    def count(self, collection: str | None = None) -> int:
        if collection is None:
            return int(self._query(f"SELECT COUNT(*) FROM {self.p}records")[0][0])
        sql = f"SELECT COUNT(*) FROM {self.p}records WHERE collection = ?"
        return int(self._query(sql, [collection])[0][0])

    def snapshot(self) -> list[tuple[str, str]]:
        """(uri, cid) of every indexed record, sorted (for comparing two indexes)."""
        rows = self._query(f"SELECT uri, cid FROM {self.p}records ORDER BY uri")
        return [(str(u), str(c)) for u, c in rows]

    def search_datasets(
        self,
        *,
        q: str | None = None,
        tags: Iterable[str] = (),
        schema: str | None = None,
        license: str | None = None,
        repo: str | None = None,
        min_bytes: int | None = None,
        max_bytes: int | None = None,
        limit: int = 25,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Dataset entries matching every filter given, and the next page's cursor.

        Without words (``q``) entries come by URI. With words, every word must be a word of the
        name or description, and entries come by relevance: rank 0, the name is the query
        (compared as :func:`name_key`: case, punctuation and spacing aside); rank 1, the name
        starts with the query or holds every word of it; rank 2, the rest (words found in the
        description). Within a rank the newest ``createdAt`` first (as the publisher states
        it; compared as text, 40 characters), then by URI. The same on SQLite and PostgreSQL.
        """
        p = self.p
        where = ["collection = 'science.alt.dataset.entry'"]
        args: list[Any] = []
        for word in sorted(words(q))[:8]:
            where.append(f"uri IN (SELECT uri FROM {p}terms WHERE kind = 'w' AND term = ?)")
            args.append(word)
        for tag in sorted({t.lower() for t in tags})[:8]:
            where.append(f"uri IN (SELECT uri FROM {p}terms WHERE kind = 'g' AND term = ?)")
            args.append(tag)
        if schema:
            clause, more = _schema_clause(schema, "schema_ref", p)
            where.append(clause)
            args += more
        for column, value in (("license", license), ("did", repo)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if min_bytes is not None:
            where.append("size_bytes >= ?")
            args.append(min_bytes)
        if max_bytes is not None:
            where.append("size_bytes <= ?")
            args.append(max_bytes)
        key = name_key(q)
        if key:
            return self._ranked_page(key, where, args, limit, cursor)
        return self._page(where, args, limit, cursor)

    def _ranked_page(
        self, key: str, where: list[str], args: list[Any], limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        p = self.p
        c = ' COLLATE "C"' if self.postgres else ""  # byte order, as SQLite's default
        limit = max(1, min(int(limit), MAX_LIMIT))
        # Only narrow (uri, rank, date) rows are ordered: the records' JSON is read for the
        # returned page alone (it was carried through the sort of every match before).
        terms = f"SELECT uri FROM {p}terms WHERE kind = "
        if self.postgres:  # one pass over the name keys (its index is not in byte order)
            prefix, prefix_args = f"left(term, ?){c} = ?", [len(key), key]
        else:  # a range of the (kind, term, uri) index; U+10FFFF is never part of a word
            prefix, prefix_args = "term >= ? AND term < ?", [key, key + "\U0010ffff"]
        matches = f"SELECT uri, created_at FROM {p}records WHERE " + " AND ".join(where) + ") m "
        ckey = f"substr(COALESCE(m.created_at, ''), 1, {_RANK_KEY_CHARS}) AS ckey "
        if self.postgres:
            # rank sets joined (hashed once), not probed per candidate: with stale statistics
            # PostgreSQL planned the probes as per-row subplans (minutes at 100k records)
            every_word = " INTERSECT ".join(f"{terms}'n' AND term = ?" for _ in key.split())
            named = f"{terms}'x' AND {prefix} UNION SELECT uri FROM ({every_word}) every_word"
            ranked = (
                "SELECT m.uri AS uri, CASE WHEN e.uri IS NOT NULL THEN 0 "
                f"WHEN n.uri IS NOT NULL THEN 1 ELSE 2 END AS rnk, {ckey}FROM ({matches}"
                f"LEFT JOIN ({terms}'x' AND term = ?) e ON e.uri = m.uri "
                f"LEFT JOIN ({named}) n ON n.uri = m.uri"
            )
            rank_args: list[Any] = [*args, key, *prefix_args, *key.split()]
        else:
            # uncorrelated IN subqueries: each is built once (an ephemeral index) and probed;
            # a LEFT JOIN to the UNION is not indexed by SQLite (quadratic)
            every_word = " AND ".join(f"m.uri IN ({terms}'n' AND term = ?)" for _ in key.split())
            ranked = (
                f"SELECT m.uri AS uri, CASE WHEN m.uri IN ({terms}'x' AND term = ?) THEN 0 "
                f"WHEN m.uri IN ({terms}'x' AND {prefix}) OR ({every_word}) THEN 1 "
                f"ELSE 2 END AS rnk, {ckey}FROM ({matches}"
            )
            rank_args = [key, *prefix_args, *key.split(), *args]
        keyset, keyset_args = "", []
        if cursor:
            r, created, uri = _decode_cursor(cursor)
            keyset = (
                f" WHERE (rnk > ? OR (rnk = ? AND ckey{c} < ?)"
                f" OR (rnk = ? AND ckey = ? AND uri{c} > ?))"
            )
            keyset_args = [r, r, created, r, created, uri]
        order = f"rnk, ckey{c} DESC, uri{c}"
        sql = (
            f"SELECT r.uri, r.cid, r.did, r.record, k.rnk, k.ckey FROM (SELECT uri, rnk, ckey "
            f"FROM ({ranked}) ranked{keyset} ORDER BY {order} LIMIT {limit + 1}) k "
            f"JOIN {p}records r ON r.uri = k.uri ORDER BY k.rnk, k.ckey{c} DESC, k.uri{c}"
        )
        rows = self._query(sql, rank_args + keyset_args)
        out = [
            {**json.loads(record), "uri": uri, "cid": cid, "did": did}
            for uri, cid, did, record, _, _ in rows[:limit]
        ]
        if len(rows) <= limit:
            return out, None
        uri, _, _, _, rnk, ckey = rows[limit - 1]
        return out, _encode_cursor(int(rnk), str(ckey), str(uri))

    def search_lenses(
        self,
        *,
        source_schema: str | None = None,
        target_schema: str | None = None,
        limit: int = 25,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Lenses from ``source_schema`` to ``target_schema`` (URI, CID or name; either may be
        left out), by URI, and the next page's cursor."""
        where = ["collection = 'science.alt.dataset.lens'"]
        args: list[Any] = []
        for param, column in ((source_schema, "source_schema"), (target_schema, "target_schema")):
            if param:
                clause, more = _schema_clause(param, column, self.p)
                where.append(clause)
                args += more
        return self._page(where, args, limit, cursor)

    def _page(
        self, where: list[str], args: list[Any], limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        limit = max(1, min(int(limit), MAX_LIMIT))
        if cursor:
            where.append("uri > ?")
            args.append(cursor)
        sql = (
            f"SELECT uri, cid, did, record FROM {self.p}records WHERE "
            + " AND ".join(where)
            + f" ORDER BY uri LIMIT {limit + 1}"
        )
        rows = self._query(sql, args)
        out = [
            {**json.loads(record), "uri": uri, "cid": cid, "did": did}
            for uri, cid, did, record in rows[:limit]
        ]
        return out, (out[-1]["uri"] if len(rows) > limit else None)


def open_store(url: str, *, prefix: str = "idx_") -> IndexStore:
    """An :class:`IndexStore` on ``url`` (``sqlite:///path`` or ``postgresql://...``)."""
    return IndexStore(url, prefix=prefix)
