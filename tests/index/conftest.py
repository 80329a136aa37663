"""Fixtures for the index tests, parametrised over every index provider.

Every test in this directory that takes ``provider``, ``provider_opener`` or ``index`` runs once
per entry of ``PROVIDERS``. An entry maps a name to a function ``(request, tmp_path) -> opener``,
where ``opener`` is a *picklable* zero-argument callable that opens a fresh provider on the same
backing data (child processes call it too). Adding a backend is one line, e.g.::

    "redis": lambda req, tmp: partial(RedisProvider, req.getfixturevalue("redis_url"),
                                      namespace=tmp.name),
    "postgres": lambda req, tmp: partial(PostgresProvider,
                                         req.getfixturevalue("postgres_dsn"), schema=tmp.name),

(the service fixtures in tests/services.py skip when the server is unavailable). Each opener
must give a backend that is empty at the start of the test.
"""

import hashlib
import re
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from atdata.index import Index, Provider, SQLiteProvider
from atdata.stores import LocalDiskStore

Opener = Callable[[], Provider]


def _namespace(tmp: Path) -> str:
    """A name unique to this test (and this run), usable as a Redis prefix and a SQL schema."""
    readable = re.sub(r"[^a-z0-9]+", "_", tmp.name.lower())[:32]
    return f"t_{readable}_{hashlib.sha1(str(tmp).encode()).hexdigest()[:8]}"


def _redis_opener(req: pytest.FixtureRequest, tmp: Path) -> Opener:
    """RedisProvider under a prefix of its own; its keys are deleted after the test."""
    from atdata.index.providers.redis import RedisProvider

    url, prefix = req.getfixturevalue("redis_url"), f"{_namespace(tmp)}:"

    def cleanup() -> None:
        import redis

        client = redis.Redis.from_url(url)
        try:
            for key in client.scan_iter(match=prefix.replace("_", "[_]") + "*"):
                client.delete(key)
        finally:
            client.close()

    req.addfinalizer(cleanup)
    return partial(RedisProvider, url, prefix=prefix)


def _postgres_opener(req: pytest.FixtureRequest, tmp: Path) -> Opener:
    """PostgresProvider in a schema of its own; the schema is dropped after the test."""
    from atdata.index.providers.postgres import PostgresProvider

    dsn, schema = req.getfixturevalue("postgres_dsn"), _namespace(tmp)

    def cleanup() -> None:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    req.addfinalizer(cleanup)
    return partial(PostgresProvider, dsn, schema=schema, max_size=4)


PROVIDERS: dict[str, Callable[[pytest.FixtureRequest, Path], Opener]] = {
    "sqlite": lambda req, tmp: partial(SQLiteProvider, tmp / "index.db"),
    "redis": _redis_opener,
    "postgres": _postgres_opener,
}


@pytest.fixture(autouse=True)
def _atdata_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ATDATA_HOME at the test's temporary directory, so nothing touches ~/.atdata."""
    home = tmp_path / "home"
    monkeypatch.setenv("ATDATA_HOME", str(home))
    return home


@pytest.fixture(params=sorted(PROVIDERS))
def provider_opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    return PROVIDERS[request.param](request, tmp_path)


@pytest.fixture
def provider(provider_opener: Opener) -> Iterator[Provider]:
    p = provider_opener()
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def store(tmp_path: Path) -> LocalDiskStore:
    return LocalDiskStore(tmp_path / "data")


@pytest.fixture
def index(provider: Provider, store: LocalDiskStore) -> Iterator[Index]:
    idx = Index(provider, store)
    yield idx
