"""Opening the index from a URL (``ATDATA_INDEX_URL``, ``Index(provider=..., url=...)``), and
8 processes that each open their own provider from a URL writing 400 entries between them."""

import multiprocessing
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from atdata._redact import redact
from atdata.errors import AtdataIndexError
from atdata.index import Index, SQLiteProvider
from atdata.index.providers.url import INDEX_URL_ENV, open_provider, provider_from_url
from atdata.stores import LocalDiskStore


def test_sqlite_urls_name_absolute_relative_and_home_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute = provider_from_url(f"sqlite://{tmp_path}/a.db")
    assert isinstance(absolute, SQLiteProvider) and absolute.path == f"{tmp_path}/a.db"
    absolute.close()
    four = provider_from_url(f"sqlite:///{tmp_path}/b.db?timeout=3")  # SQLAlchemy's spelling
    assert four.path == f"{tmp_path}/b.db" and four.timeout == 3.0
    four.close()
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite:rel.db", "sqlite://rel.db"):
        relative = provider_from_url(url)
        assert relative.path == "rel.db"
        relative.close()
    assert (tmp_path / "rel.db").exists()
    monkeypatch.setenv("HOME", str(tmp_path))
    home = provider_from_url("sqlite://~/h.db")
    home.close()
    assert (tmp_path / "h.db").exists()
    spaced = provider_from_url(f"sqlite://{tmp_path}/with%20space.db")
    spaced.close()
    assert (tmp_path / "with space.db").exists()


def test_bad_urls_are_refused_with_the_forms_that_work(tmp_path: Path) -> None:
    with pytest.raises(AtdataIndexError, match="unknown index URL scheme 'mysql'"):
        provider_from_url("mysql://root:pw@localhost/db")
    with pytest.raises(AtdataIndexError, match="sqlite:///path"):
        provider_from_url("no-scheme-here")
    with pytest.raises(AtdataIndexError, match="names no file"):
        provider_from_url("sqlite://")
    with pytest.raises(AtdataIndexError, match="unknown parameter 'nope'"):
        provider_from_url(f"sqlite://{tmp_path}/x.db?nope=1")
    with pytest.raises(AtdataIndexError, match="bad value"):
        provider_from_url("redis://127.0.0.1:1/0?lock_ttl=soon")
    with pytest.raises(AtdataIndexError, match="unknown index provider"):
        open_provider("mongo", url="mongodb://x")
    with pytest.raises(AtdataIndexError, match="needs dsn="):
        open_provider("postgres")
    with pytest.raises(AtdataIndexError, match="is not a redis URL"):
        open_provider("redis", url=f"sqlite://{tmp_path}/x.db")
    assert redact("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"


def test_redis_urls_carry_the_prefix_and_lock_options(redis_url: str) -> None:
    prefix = f"u{uuid.uuid4().hex[:8]}:"
    provider = provider_from_url(f"{redis_url}?prefix={prefix}&lock_ttl=2.5&timeout=4")
    assert provider.kind == "redis"
    assert (provider.prefix, provider.lock_ttl, provider.timeout) == (prefix, 2.5, 4.0)  # type: ignore[attr-defined]
    provider.close()
    # keyword options win over the URL's
    other = open_provider("redis", url=f"{redis_url}?prefix=ignored:", prefix=prefix)
    assert other.prefix == prefix  # type: ignore[attr-defined]
    other.close()


def test_postgres_urls_carry_the_schema_and_pass_the_rest_to_libpq(postgres_dsn: str) -> None:
    schema = f"u_{uuid.uuid4().hex[:8]}"
    sep = "&" if "?" in postgres_dsn else "?"
    url = f"{postgres_dsn}{sep}schema={schema}&application_name=atdata&max_size=2"
    provider = provider_from_url(url)
    assert provider.kind == "postgres" and provider.schema == schema  # type: ignore[attr-defined]
    with provider.transaction() as tx:
        tx.put("label", "x", {})
    provider.close()
    again = open_provider(
        "postgresql", dsn=postgres_dsn.replace("postgresql://", "postgres://"), schema=schema
    )
    assert again.get("label", "x") == {}
    again.close()


def test_the_environment_names_the_index_when_nothing_else_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(INDEX_URL_ENV, raising=False)
    with pytest.raises(AtdataIndexError, match=INDEX_URL_ENV):
        open_provider()
    monkeypatch.setenv(INDEX_URL_ENV, f"sqlite://{tmp_path}/env.db")
    provider = open_provider()
    assert provider.path == f"{tmp_path}/env.db"  # type: ignore[attr-defined]
    provider.close()
    explicit = open_provider(path=tmp_path / "explicit.db")
    assert explicit.path == str(tmp_path / "explicit.db")  # type: ignore[attr-defined]
    explicit.close()


# -- 8 processes x 50 writes, each process opening its provider from a URL ------------------------
@pytest.fixture(params=["sqlite", "redis", "postgres"])
def index_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    tag = uuid.uuid4().hex[:10]
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path}/index.db"
    elif request.param == "redis":
        yield f"{request.getfixturevalue('redis_url')}?prefix=u{tag}:"
    else:
        dsn: str = request.getfixturevalue("postgres_dsn")
        yield f"{dsn}{'&' if '?' in dsn else '?'}schema=u_{tag}&max_size=2"


def _insert_many(url: str, data: str, shard: str, count: int) -> None:
    with Index(provider_from_url(url), LocalDiskStore(data)) as index:
        for _ in range(count):
            index.insert(shard, "shared")


def test_8_processes_opening_the_index_by_url_write_400_entries(
    index_url: str, tmp_path: Path
) -> None:
    from index_types import Point

    import atdata

    shard = str(tmp_path / "src" / "points-000000.tar")
    os.makedirs(os.path.dirname(shard))
    atdata.write_samples(
        [Point(x=i, name=str(i)) for i in range(4)], shard.replace("000000", "%06d")
    )
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_insert_many, args=(index_url, str(tmp_path / "data"), shard, 50))
        for _ in range(8)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=280)
        assert p.exitcode == 0
    with Index(provider_from_url(index_url), LocalDiskStore(tmp_path / "data")) as index:
        history = index.history("shared")
        assert [e.version for e in history] == list(range(1, 401))
        assert index.get("shared").version == 400
        assert {e.cid for e in history} == {history[0].cid}  # same shard, same content id


def test_the_index_facade_opens_providers_by_name_and_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, postgres_dsn: str
) -> None:
    store = LocalDiskStore(tmp_path / "data")
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    with Index("redis", store, url=f"{redis_url}?prefix={prefix}") as by_name:
        assert by_name.repository().provider.kind == "redis"
        by_name.write([{"x": 1}], name="seen-everywhere")
    with Index(dsn=postgres_dsn, data_store=store) as by_dsn:
        assert by_dsn.repository().provider.kind == "postgres"
    monkeypatch.setenv(INDEX_URL_ENV, f"{redis_url}?prefix={prefix}")
    with Index(data_store=store) as from_env:
        assert from_env.repository().provider.kind == "redis"
        assert from_env.get("seen-everywhere").count == 1
    monkeypatch.delenv(INDEX_URL_ENV)
    with Index(home=tmp_path / "home") as default:
        assert default.repository().provider.kind == "sqlite"
