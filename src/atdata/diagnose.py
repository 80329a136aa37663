"""``atdata diagnose``: is this installation, and the index it points at, set up safely?

:func:`diagnose` returns a :class:`Report`: a list of :class:`Check` results, each ``ok``,
``warn``, ``fail`` or ``skip`` with a one-line detail and, where something should change, a hint
saying what to do. It changes nothing beyond what opening the index does (an index that does
not exist yet is created empty, as on first use). The CLI prints it (``report.to_text()`` or
``report.to_dict()`` for ``--json``) and exits non-zero when ``report.ok`` is False.

What is checked:

- the Python and atdata versions, and which optional extras are importable;
- the index named by the ``index_url`` argument, else ``ATDATA_INDEX_URL``: that it opens, and
  per provider:

  - SQLite: the schema version and WAL journal mode;
  - Redis: persistence (the index needs the append-only file; RDB snapshots alone lose recent
    writes, no persistence loses everything on restart) and the eviction policy (anything but
    ``noeviction`` may delete index records or the writers' lock). Read with ``CONFIG GET``, or
    ``INFO`` where CONFIG is disabled (managed services), else reported as unknown;
  - PostgreSQL: the schema version, and the durability settings ``fsync``,
    ``full_page_writes`` and ``synchronous_commit``.
"""

import contextlib
import importlib.util
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any, Literal

from ._optional import install_command
from ._redact import redact
from .errors import AtdataError
from .index.providers.base import Provider
from .index.providers.url import INDEX_URL_ENV, provider_from_url

__all__ = [
    "Check",
    "Report",
    "Status",
    "check_postgres_settings",
    "check_provider",
    "check_redis_settings",
    "diagnose",
]

Status = Literal["ok", "warn", "fail", "skip"]
_RANK: dict[str, int] = {"ok": 0, "skip": 0, "warn": 1, "fail": 2}
_EXTRAS = {
    "redis": ("redis",),
    "postgres": ("psycopg", "psycopg_pool"),
    "s3": ("boto3",),
    "http": ("httpx",),
    "atmosphere": ("httpx",),
}


@dataclass(frozen=True)
class Check:
    """One finding: ``name`` is dotted (``index.redis.persistence``)."""

    name: str
    status: Status
    detail: str
    hint: str = ""

    def __post_init__(self) -> None:
        # a detail may quote a connection string or a driver's message: never show a secret
        object.__setattr__(self, "detail", redact(self.detail))
        object.__setattr__(self, "hint", redact(self.hint))


@dataclass(frozen=True)
class Report:
    """The findings of :func:`diagnose`, in the order they were made."""

    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """False when any check failed (warnings do not count)."""
        return all(c.status != "fail" for c in self.checks)

    @property
    def status(self) -> Status:
        """The worst status of all checks."""
        worst: Status = "ok"
        for c in self.checks:
            if _RANK[c.status] > _RANK[worst]:
                worst = c.status
        return worst

    def __getitem__(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "status": self.status, "checks": [asdict(c) for c in self.checks]}

    def to_text(self) -> str:
        lines = []
        for c in self.checks:
            lines.append(f"[{c.status:>4}] {c.name}: {c.detail}")
            if c.hint:
                lines.append(f"       -> {c.hint}")
        return "\n".join(lines)


def diagnose(
    index_url: str | None = None,
    *,
    provider: Provider | None = None,
    environ: Mapping[str, str] | None = None,
) -> Report:
    """Check the installation and the index (``provider``, or the one ``index_url`` or
    ``ATDATA_INDEX_URL`` names, opened and closed here)."""
    env = os.environ if environ is None else environ
    checks: list[Check] = [_python(), _version(), *_extras()]
    if provider is not None:
        checks += check_provider(provider)
        return Report(tuple(checks))
    url = index_url or env.get(INDEX_URL_ENV)
    if not url:
        checks.append(
            Check(
                "index",
                "skip",
                f"no index URL given and {INDEX_URL_ENV} is unset: the default SQLite index is used",
                f"set {INDEX_URL_ENV} (sqlite:///path, redis://..., postgresql://...) to check "
                "a shared index",
            )
        )
        return Report(tuple(checks))
    try:
        opened = provider_from_url(url)
    except ImportError as exc:
        checks.append(Check("index", "fail", f"cannot open {redact(url)}: {exc}"))
        return Report(tuple(checks))
    except AtdataError as exc:
        checks.append(
            Check(
                "index",
                "fail",
                f"cannot open {redact(url)}: {exc}",
                "check the URL, that the server runs, and the credentials",
            )
        )
        return Report(tuple(checks))
    try:
        checks += check_provider(opened)
    finally:
        opened.close()
    return Report(tuple(checks))


def check_provider(provider: Provider) -> list[Check]:
    """The checks of one open provider (dispatching on ``provider.kind``)."""
    checks = [Check("index", "ok", f"opened {provider!r}")]
    try:
        if provider.kind == "redis":
            checks += check_redis_settings(provider.server_settings())  # type: ignore[attr-defined]
        elif provider.kind == "postgres":
            checks += check_postgres_settings(provider.server_settings())  # type: ignore[attr-defined]
        elif provider.kind == "sqlite":
            checks += _sqlite(provider)
        else:
            checks.append(Check(f"index.{provider.kind}", "skip", "no checks for this provider"))
    except AtdataError as exc:
        checks.append(Check(f"index.{provider.kind}", "fail", f"could not read settings: {exc}"))
    return checks


def check_redis_settings(facts: Mapping[str, Any]) -> list[Check]:
    """Judge a Redis server's persistence and eviction (``RedisProvider.server_settings()``)."""
    out: list[Check] = []
    source = facts.get("source")
    version = facts.get("redis_version") or "unknown version"
    how = {"config": "CONFIG GET", "info": "INFO (CONFIG is disabled)"}.get(str(source), "")
    out.append(
        Check(
            "index.redis.server",
            "ok" if source else "warn",
            f"Redis {version}" + (f", settings read with {how}" if how else ""),
            ""
            if source
            else "the server answers neither CONFIG GET nor INFO; check its persistence and "
            "eviction settings by hand (appendonly yes, maxmemory-policy noeviction)",
        )
    )
    if not source:
        return out
    aof, fsync, save = facts.get("appendonly"), facts.get("appendfsync"), facts.get("save")
    enable_aof = (
        "enable the append-only file: `appendonly yes` and `appendfsync everysec` in redis.conf "
        "(or CONFIG SET appendonly yes, then CONFIG REWRITE)"
    )
    if aof:
        if fsync == "no":
            out.append(
                Check(
                    "index.redis.persistence",
                    "warn",
                    "append-only file on, but appendfsync no: the OS decides when writes reach "
                    "the disk (about 30 s may be lost in a power failure)",
                    "set appendfsync everysec (at most ~1 s lost) or always (nothing lost)",
                )
            )
        else:
            lost = "nothing" if fsync == "always" else "at most ~1 s of writes"
            fsync_text = f"appendfsync {fsync}" if fsync else "appendfsync unknown"
            out.append(
                Check(
                    "index.redis.persistence",
                    "ok",
                    f"append-only file on ({fsync_text}): {lost} lost in a power failure",
                )
            )
    elif save is None:
        out.append(
            Check(
                "index.redis.persistence",
                "warn",
                "append-only file off; whether RDB snapshots are taken is unknown",
                enable_aof,
            )
        )
    elif str(save).strip():
        out.append(
            Check(
                "index.redis.persistence",
                "warn",
                f"RDB snapshots only (save {save!r}): every write since the last snapshot is "
                "lost when the server stops uncleanly",
                enable_aof,
            )
        )
    else:
        out.append(
            Check(
                "index.redis.persistence",
                "fail",
                "no persistence (appendonly no, save ''): a restart loses the whole index",
                enable_aof,
            )
        )
    policy = str(facts.get("maxmemory_policy") or "unknown")
    maxmemory = int(facts.get("maxmemory") or 0)
    noeviction = "set maxmemory-policy noeviction (writes then fail cleanly when memory is full)"
    if policy == "noeviction":
        out.append(Check("index.redis.eviction", "ok", "maxmemory-policy noeviction"))
    elif policy.startswith("allkeys"):
        out.append(
            Check(
                "index.redis.eviction",
                "fail" if maxmemory else "warn",
                f"maxmemory-policy {policy}"
                + (
                    f" with maxmemory {maxmemory}: index records are evicted when memory fills"
                    if maxmemory
                    else " (no maxmemory yet): once a limit is set, index records may be evicted"
                ),
                noeviction,
            )
        )
    else:
        out.append(
            Check(
                "index.redis.eviction",
                "warn",
                f"maxmemory-policy {policy}: index records have no TTL and stay, but the "
                "writers' lock may be evicted (commits then fail and are retried by the caller)",
                noeviction,
            )
        )
    return out


def check_postgres_settings(facts: Mapping[str, Any]) -> list[Check]:
    """Judge a PostgreSQL server (``PostgresProvider.server_settings()``)."""
    out = [
        Check(
            "index.postgres.server",
            "ok",
            f"PostgreSQL {facts.get('server_version')}, user {facts.get('current_user')}",
        )
    ]
    current, latest = facts.get("schema_version"), facts.get("latest_schema_version")
    out.append(
        Check(
            "index.postgres.schema",
            "ok" if current == latest else "warn",
            f"schema {facts.get('schema')!r} at version {current} (this atdata: {latest})",
        )
    )
    if facts.get("fsync") == "off" or facts.get("full_page_writes") == "off":
        out.append(
            Check(
                "index.postgres.durability",
                "warn",
                f"fsync {facts.get('fsync')}, full_page_writes {facts.get('full_page_writes')}: "
                "an operating-system crash or power failure can corrupt the database",
                "turn fsync and full_page_writes on (fine off only for throwaway test servers)",
            )
        )
    elif facts.get("synchronous_commit") == "off":
        out.append(
            Check(
                "index.postgres.durability",
                "warn",
                "synchronous_commit off: a crash can lose the last acknowledged writes "
                "(never corrupts)",
                "set synchronous_commit on for the atdata database",
            )
        )
    else:
        out.append(
            Check(
                "index.postgres.durability",
                "ok",
                f"fsync on, full_page_writes on, synchronous_commit {facts.get('synchronous_commit')}",
            )
        )
    return out


# -- internals ---------------------------------------------------------------------------------
def _python() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check(
        "python",
        "ok" if ok else "fail",
        f"Python {platform.python_version()} ({sys.executable})",
        "" if ok else "atdata needs Python 3.11 or newer",
    )


def _version() -> Check:
    try:
        version = metadata.version("atdata")
    except metadata.PackageNotFoundError:
        return Check("atdata", "warn", "atdata is importable but not installed as a package")
    return Check("atdata", "ok", f"atdata {version}")


def _extras() -> list[Check]:
    out = []
    for extra, modules in _EXTRAS.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            out.append(
                Check(
                    f"extra.{extra}",
                    "skip",
                    f"not installed ({', '.join(missing)} missing)",
                    f"{install_command(extra)} if you need it",
                )
            )
        else:
            out.append(Check(f"extra.{extra}", "ok", "installed"))
    return out


def _sqlite(provider: Provider) -> list[Check]:
    from .index.providers.sqlite import MIGRATIONS, SQLiteProvider

    assert isinstance(provider, SQLiteProvider)
    out = []
    version, latest = provider.schema_version, MIGRATIONS[-1][0]
    out.append(
        Check(
            "index.sqlite.schema",
            "ok" if version == latest else "warn",
            f"{provider.path} at schema version {version} (this atdata: {latest})",
        )
    )
    if provider.path == ":memory:":
        return out
    import sqlite3
    import urllib.parse

    uri = "file:" + urllib.parse.quote(os.path.expanduser(provider.path)) + "?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    except sqlite3.Error as exc:
        out.append(Check("index.sqlite.journal", "warn", f"could not read journal_mode: {exc}"))
        return out
    out.append(
        Check(
            "index.sqlite.journal",
            "ok" if mode == "wal" else "warn",
            f"journal_mode {mode}",
            "" if mode == "wal" else "the index expects WAL; is the file on a network filesystem?",
        )
    )
    return out
