"""The Redis provider: index records in a Redis server, under one key prefix.

Layout (``P`` is the prefix, ``atdata:`` unless configured; nothing outside it is ever read,
written or deleted, and the keyspace is never SCANned):

- ``P<kind>:records`` - a hash: record key -> the record as compact JSON (UTF-8).
- ``P<kind>:keys`` - a sorted set of the same keys, all with score 0, so that ``ZRANGEBYLEX``
  gives them in byte order (= code point order for UTF-8), pages with ``LIMIT`` and bounds a
  prefix: scans cost O(log n + page), lookups are one ``HGET``.
- ``P_lock`` - the writer lock (a random token with a TTL); ``P_meta`` - a hash holding the
  layout version (``layout``), checked when a provider opens the index.

Transactions are **pessimistic**: ``transaction()`` takes the lock key (redis-py's
:class:`redis.lock.Lock`: ``SET NX PX`` with a random token, polled up to ``timeout`` seconds),
reads under it, buffers writes, and commits them with one
Lua script that first checks the lock still holds its token, then applies every write to both the
hash and the sorted set and releases the lock. Redis runs a script atomically, so a commit is
all or nothing, and since every writer holds the lock from its first read to its commit,
transactions are serializable. A lock expires after ``lock_ttl`` seconds without activity (a
crashed writer blocks others at most that long); a transaction keeps its lock alive while it
works, and if its lock was lost anyway, the commit writes nothing and raises
:class:`~atdata.errors.IndexUnavailableError`. Reads outside a transaction (``get``, ``scan``) take
no lock: one ``HGET``, or one read-only script for a scan page, each atomic on its own.

Persistence is the server's job, and the index needs it: run Redis with the append-only file
(``appendonly yes``; ``appendfsync everysec`` loses at most about a second of writes on a power
failure, ``always`` nothing) and ``maxmemory-policy noeviction`` (any ``allkeys-*`` policy may
silently evict index records). RDB snapshots alone (``save``) lose every write since the last
snapshot. ``atdata diagnose`` reads the configuration (``CONFIG GET``, or ``INFO`` where CONFIG
is disabled) and says whether it is safe. Redis Cluster is not supported (the keys of one
transaction may live on different nodes) unless the prefix holds a hash tag, such as
``{atdata}:``, which puts every key on one node.
"""

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ..._optional import require
from ..._redact import redact
from ...errors import AtdataIndexError, ConflictError, IndexUnavailableError
from ._common import dumps_record_utf8 as _dumps
from ._common import loads_record as _loads
from ._common import (
    refuse_nesting,
    server_failed,
    server_unavailable,
    while_doing,
)
from .base import Provider, Record, Transaction, check_key, check_kind

__all__ = ["DEFAULT_PREFIX", "LAYOUT_VERSION", "RedisProvider"]

DEFAULT_PREFIX = "atdata:"
#: Version of the key layout described above; bumped (with a migration) if it ever changes.
LAYOUT_VERSION = 1

T = TypeVar("T")
_MISSING = object()

# Seconds between two tries of a writer waiting for the lock (redis-py's Lock polls).
_LOCK_POLL = 0.005

# KEYS: lock, then (records hash, keys zset) for each write. ARGV: token, then (op, key, value)
# for each write, op "p" (put) or "d" (delete). Applies every write, or none when the lock is no
# longer ours; releases the lock.
_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local n = (#KEYS - 1) / 2
for i = 1, n do
  local h, z = KEYS[2 * i], KEYS[2 * i + 1]
  local op, k = ARGV[3 * i - 1], ARGV[3 * i]
  if op == 'p' then
    redis.call('HSET', h, k, ARGV[3 * i + 1])
    redis.call('ZADD', z, 0, k)
  else
    redis.call('HDEL', h, k)
    redis.call('ZREM', z, k)
  end
end
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS: keys zset, records hash. ARGV: min, max, limit (-1: none). One consistent page of a scan:
# a flat list key1, value1, key2, value2, ...
_SCAN = """
local keys
if tonumber(ARGV[3]) >= 0 then
  keys = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])
else
  keys = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2])
end
local out = {}
for i = 1, #keys, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, #keys) do chunk[#chunk + 1] = keys[j] end
  local values = redis.call('HMGET', KEYS[2], unpack(chunk))
  for j = 1, #chunk do
    out[#out + 1] = chunk[j]
    out[#out + 1] = values[j]
  end
end
return out
"""


class RedisProvider(Provider):
    """Index records in a Redis server, every key under ``prefix``.

    ``url`` is a redis-py URL (``redis://[[user]:password@]host:port/db``, ``rediss://`` for
    TLS, ``unix:///path/redis.sock?db=0``). ``timeout`` bounds how long a command or a wait for
    the writer lock may take; ``lock_ttl`` is how long the lock outlives a writer that stopped
    (crashed) without releasing it. The server is contacted when the provider is created.
    """

    kind = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        lock_ttl: float = 10.0,
    ) -> None:
        redis = require("redis", "redis")
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        if not isinstance(prefix, str) or not prefix or len(prefix) > 128:
            raise AtdataIndexError(f"bad Redis key prefix {prefix!r}: 1 to 128 characters")
        if lock_ttl <= 0 or timeout <= 0:
            raise AtdataIndexError("timeout and lock_ttl must be positive")
        self.url = url
        self.where = redact(url)
        self.prefix = prefix
        self.timeout = float(timeout)
        self.lock_ttl = float(lock_ttl)
        self._pfx = prefix.encode("utf-8")
        self._lock_key = self._pfx + b"_lock"
        self._meta_key = self._pfx + b"_meta"
        self._local = threading.local()
        self._closed = False
        self._mod: Any = redis
        try:
            self._client: Any = redis.Redis.from_url(
                url,
                socket_timeout=self.timeout,
                socket_connect_timeout=connect_timeout,
                # Retries are ours: only idempotent reads are retried, never a commit.
                retry=Retry(NoBackoff(), 0),
                decode_responses=False,
            )
        except (ValueError, TypeError) as exc:
            raise AtdataIndexError(redact(f"bad Redis URL {self.where}: {exc}")) from exc
        self._commit = self._client.register_script(_COMMIT)
        self._scan = self._client.register_script(_SCAN)
        self._check_layout()

    def __repr__(self) -> str:
        return f"RedisProvider({self.where!r}, prefix={self.prefix!r})"

    # -- Provider ----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        self._check_open()
        refuse_nesting(self, self._local)
        token = os.urandom(16).hex().encode()
        lock = self._lock(token)
        self._local.depth = 1
        tx = _RedisTransaction(self, lock, token)
        try:
            yield tx
            tx.closed = True
            tx.commit()  # applies the writes and releases the lock, or raises
        except BaseException:
            tx.closed = True
            self._unlock(lock)  # a no-op when the commit already released it
            raise
        finally:
            self._local.depth = 0

    def get(self, kind: str, key: str) -> Record | None:
        self._check_open()
        return self._hget(kind, check_key(key))

    def scan(
        self,
        kind: str,
        prefix: str = "",
        *,
        start_after: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[str, Record]]:
        self._check_open()
        return self._scan_page(kind, prefix, start_after, limit)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):  # closing is best effort
            self._client.close()

    # -- diagnostics -------------------------------------------------------------------------
    def server_settings(self) -> dict[str, Any]:
        """What the server says about persistence and eviction, for ``atdata diagnose``.

        Keys: ``source`` ("config", "info" where CONFIG is disabled, or None where neither
        answers), ``redis_version``, ``appendonly`` (bool), ``appendfsync``, ``save`` (str, the
        RDB schedule; None when unknown), ``maxmemory`` (int bytes, 0 = no limit),
        ``maxmemory_policy``, ``layout`` (this index's layout version), ``records`` (per kind).
        """
        redis = self._mod
        facts: dict[str, Any] = {
            "source": None,
            "redis_version": None,
            "appendonly": None,
            "appendfsync": None,
            "save": None,
            "maxmemory": None,
            "maxmemory_policy": None,
            "errors": [],
        }
        with self._translated():
            try:
                info = self._client.info("server")
                facts["redis_version"] = _text(info.get("redis_version"))
            except redis.ResponseError as exc:
                facts["errors"].append(f"INFO: {_text(exc)}")
            try:
                cfg = {
                    _text(k): _text(v)
                    for k, v in self._client.config_get(
                        "appendonly", "appendfsync", "save", "maxmemory", "maxmemory-policy"
                    ).items()
                }
                facts.update(
                    source="config",
                    appendonly=cfg.get("appendonly") == "yes",
                    appendfsync=cfg.get("appendfsync"),
                    save=cfg.get("save"),
                    maxmemory=int(cfg.get("maxmemory") or 0),
                    maxmemory_policy=cfg.get("maxmemory-policy"),
                )
            except redis.ResponseError as exc:  # CONFIG renamed away or denied by ACL
                facts["errors"].append(f"CONFIG GET: {_text(exc)}")
                try:
                    persistence = self._client.info("persistence")
                    memory = self._client.info("memory")
                    facts.update(
                        source="info",
                        appendonly=int(persistence.get("aof_enabled", 0)) == 1,
                        maxmemory=int(memory.get("maxmemory", 0)),
                        maxmemory_policy=_text(memory.get("maxmemory_policy")),
                    )
                except redis.ResponseError as exc2:
                    facts["errors"].append(f"INFO: {_text(exc2)}")
            facts["layout"] = _int_or_none(self._client.hget(self._meta_key, "layout"))
        return facts

    # -- internals ---------------------------------------------------------------------------
    def _records(self, kind: str) -> bytes:
        return self._pfx + kind.encode() + b":records"

    def _keys(self, kind: str) -> bytes:
        return self._pfx + kind.encode() + b":keys"

    def _hget(self, kind: str, key: str) -> Record | None:
        """The stored record of ``(kind, key)`` (``key`` already checked), one HGET."""
        field = _key_bytes(key)
        raw = self._retrying(lambda: self._client.hget(self._records(check_kind(kind)), field))
        return None if raw is None else _loads(raw, kind, key)

    def _check_open(self) -> None:
        if self._closed:
            raise AtdataIndexError(f"{self!r} is closed")

    def _check_layout(self) -> None:
        def check() -> Any:
            self._client.hsetnx(self._meta_key, "layout", LAYOUT_VERSION)
            return self._client.hget(self._meta_key, "layout")

        found = _int_or_none(self._retrying(check))
        if found is None or found > LAYOUT_VERSION:
            raise AtdataIndexError(
                f"the index under prefix {self.prefix!r} in Redis at {self.where} has layout "
                f"version {found!r}, which this atdata does not understand ({LAYOUT_VERSION}); "
                "upgrade atdata or use another prefix"
            )

    def _lock(self, token: bytes) -> Any:
        """The writer lock, held under ``token`` (which the commit script checks)."""
        lock = self._client.lock(
            self._lock_key,
            timeout=self.lock_ttl,
            sleep=_LOCK_POLL,
            blocking_timeout=self.timeout,
            thread_local=False,
        )
        if not self._retrying(lambda: lock.acquire(token=token)):
            raise IndexUnavailableError(
                f"the index in Redis at {self.where} (prefix {self.prefix!r}) stayed locked "
                f"by another writer for {self.timeout:g}s; retry later. A writer that "
                f"crashed releases the lock after {self.lock_ttl:g}s."
            )
        return lock

    def _unlock(self, lock: Any) -> None:
        # Only while still ours (redis-py checks the token). On failure the lock expires on its
        # own; the original error matters more.
        with contextlib.suppress(AtdataIndexError), self._translated():
            lock.release()

    def _scan_page(
        self,
        kind: str,
        prefix: str,
        start_after: str | None,
        limit: int | None,
    ) -> list[tuple[str, Record]]:
        lo, hi = _lex_range(prefix, start_after)
        n = -1 if limit is None else max(0, int(limit))
        zkey, hkey = self._keys(check_kind(kind)), self._records(kind)
        if n == 0:
            return []
        flat = self._retrying(lambda: self._scan(keys=[zkey, hkey], args=[lo, hi, n]))
        out: list[tuple[str, Record]] = []
        for i in range(0, len(flat), 2):
            raw = flat[i + 1]
            if raw is None:  # a key without a record: never written by us; skip it
                continue
            key = flat[i].decode("utf-8")
            out.append((key, _loads(raw, kind, key)))
        return out

    def _retrying(self, fn: Callable[[], T]) -> T:
        """Run an idempotent call, once more on a fresh connection if the first one broke."""
        redis = self._mod
        try:
            with self._translated():
                return fn()
        except IndexUnavailableError as exc:
            if not isinstance(exc.__cause__, redis.ConnectionError) or isinstance(
                exc.__cause__, redis.BusyLoadingError
            ):
                raise
        with self._translated():
            return fn()

    @contextmanager
    def _translated(self, doing: str = "") -> Iterator[None]:
        """Turn redis-py errors into atdata errors naming the server and prefix."""
        yield from _translate(self, doing)


def _translate(provider: RedisProvider, doing: str) -> Iterator[None]:
    redis = provider._mod
    where = f"Redis at {provider.where} (prefix {provider.prefix!r})"
    what = while_doing(doing)
    try:
        yield
    except redis.BusyLoadingError as exc:
        raise IndexUnavailableError(
            f"{where} is loading its data after a restart{what}; retry in a moment"
        ) from exc
    except redis.AuthenticationError as exc:  # a ConnectionError subclass: test it first
        raise AtdataIndexError(redact(f"{where} refused the credentials: {_text(exc)}")) from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise server_unavailable(where, what, _text(exc)) from exc
    except redis.ResponseError as exc:
        text = _text(exc)
        if text.startswith(("OOM", "MISCONF", "READONLY", "LOADING", "MASTERDOWN", "BUSY")):
            raise IndexUnavailableError(f"{where} cannot take writes now{what}: {text}") from exc
        if text.startswith("NOPERM"):
            raise AtdataIndexError(
                f"{where} denied a command{what}: {text}; the Redis user needs access to keys "
                f"'{provider.prefix}*' and to EVALSHA/SCRIPT LOAD"
            ) from exc
        raise server_failed(where, what, text) from exc
    except redis.RedisError as exc:
        raise server_failed(where, what, _text(exc)) from exc


class _RedisTransaction(Transaction):
    """Reads under the writer lock; writes buffered until commit."""

    def __init__(self, provider: RedisProvider, lock: Any, token: bytes) -> None:
        self._p = provider
        self._lock = lock
        self._token = token
        self._writes: dict[tuple[str, str], bytes | None] = {}
        self._refreshed = time.monotonic()
        self.closed = False

    def _touch(self) -> None:
        if self.closed:
            raise AtdataIndexError("this transaction is finished; open a new one")
        now = time.monotonic()
        if now - self._refreshed < self._p.lock_ttl / 3:
            return
        p = self._p
        try:
            p._retrying(self._lock.reacquire)  # the TTL starts again, if the lock is still ours
        except AtdataIndexError as exc:
            if not isinstance(exc.__cause__, p._mod.exceptions.LockNotOwnedError):
                raise
            raise IndexUnavailableError(
                f"{p!r}: this transaction lost the writer lock (idle for more than "
                f"{p.lock_ttl:g}s); nothing was written, retry the operation"
            ) from exc.__cause__
        self._refreshed = now

    def get(self, kind: str, key: str) -> Record | None:
        self._touch()
        pending = self._writes.get((check_kind(kind), check_key(key)), _MISSING)
        if pending is not _MISSING:
            return None if pending is None else _loads(pending, kind, key)  # type: ignore[arg-type]
        return self._p._hget(kind, key)

    def scan(
        self,
        kind: str,
        prefix: str = "",
        *,
        start_after: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[str, Record]]:
        self._touch()
        check_kind(kind)
        mine = {k: v for (kd, k), v in self._writes.items() if kd == kind}
        if not mine:
            return self._p._scan_page(kind, prefix, start_after, limit)
        # Merge the buffered writes into the server's page: fetch enough server keys that
        # removing our deletes still leaves a full page, then overlay our puts.
        deletes = sum(1 for v in mine.values() if v is None)
        fetch = None if limit is None else max(0, int(limit)) + deletes
        merged = dict(self._p._scan_page(kind, prefix, start_after, fetch))
        for k, v in mine.items():
            if not k.startswith(prefix) or (start_after is not None and k <= start_after):
                continue
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = _loads(v, kind, k)
        page = sorted(merged.items())
        return page if limit is None else page[: max(0, int(limit))]

    def put(self, kind: str, key: str, record: Record) -> None:
        self._touch()
        self._writes[(check_kind(kind), check_key(key))] = _dumps(record, kind, key)

    def create(self, kind: str, key: str, record: Record) -> None:
        self._touch()
        value = _dumps(record, check_kind(kind), check_key(key))
        if self._exists(kind, key):
            raise ConflictError(f"{kind} {key!r} already exists in {self._p!r}")
        self._writes[(kind, key)] = value

    def delete(self, kind: str, key: str) -> bool:
        self._touch()
        existed = self._exists(check_kind(kind), check_key(key))
        if existed:
            self._writes[(kind, key)] = None
        return existed

    def _exists(self, kind: str, key: str) -> bool:
        pending = self._writes.get((kind, key), _MISSING)
        if pending is not _MISSING:
            return pending is not None
        p = self._p
        field = _key_bytes(key)
        return bool(p._retrying(lambda: p._client.hexists(p._records(kind), field)))

    def commit(self) -> None:
        p = self._p
        if not self._writes:
            p._unlock(self._lock)
            return
        keys: list[bytes] = [p._lock_key]
        args: list[bytes] = [self._token]
        for (kind, key), value in self._writes.items():
            keys += (p._records(kind), p._keys(kind))
            args += (
                (b"p", _key_bytes(key), value)
                if value is not None
                else (b"d", _key_bytes(key), b"")
            )
        try:
            with p._translated("committing a transaction"):
                ok = p._commit(keys=keys, args=args)
        except IndexUnavailableError as exc:
            raise IndexUnavailableError(
                f"{exc}. The connection broke during the commit: its writes were applied "
                "completely or not at all; read the records again to know which"
            ) from exc.__cause__
        if not ok:
            raise IndexUnavailableError(
                f"{p!r}: this transaction lost the writer lock before it committed (it expired "
                f"after {p.lock_ttl:g}s without activity); nothing was written, retry the operation"
            )


def _lex_range(prefix: str, start_after: str | None) -> tuple[bytes, bytes]:
    """ZRANGEBYLEX bounds for keys starting with ``prefix`` and greater than ``start_after``."""
    pre = _key_bytes(prefix) if prefix else b""
    lo, hi = b"-", b"+"
    if pre:
        lo = b"[" + pre
        # UTF-8 never contains 0xFF, so bumping the last byte bounds every extension of prefix.
        hi = b"(" + pre[:-1] + bytes([pre[-1] + 1])
    if start_after is not None:
        after = _key_bytes(start_after)
        if not pre or after >= pre:
            lo = b"(" + after
    return lo, hi


def _key_bytes(key: str) -> bytes:
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AtdataIndexError(f"record key {key!r} is not valid Unicode: {exc}") from None


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _int_or_none(value: object) -> int | None:
    try:
        return int(_text(value)) if value is not None else None
    except ValueError:
        return None
