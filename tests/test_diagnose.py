"""``atdata diagnose`` says whether the index's server keeps the index safe, and what to change.

Redis servers here are our own (``RedisServer``), started with the configuration under test.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from atdata.diagnose import Report, check_redis_settings, diagnose
from atdata.index.providers.url import INDEX_URL_ENV
from services import RedisServer, unavailable


def _redis(*args: str, appendonly: bool = True) -> Iterator[RedisServer]:
    try:
        server = RedisServer(appendonly=appendonly, extra_args=list(args))
    except FileNotFoundError as exc:
        unavailable(str(exc))
    with server:
        yield server


@pytest.mark.parametrize(
    ("args", "appendonly", "persistence", "eviction"),
    [
        ((), True, "ok", "ok"),
        (("--appendfsync", "no"), True, "warn", "ok"),
        ((), False, "fail", "ok"),
        (("--save", "900 1"), False, "warn", "ok"),
        (("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"), True, "ok", "fail"),
        (("--maxmemory-policy", "allkeys-lru"), True, "ok", "warn"),
        (("--maxmemory-policy", "volatile-lru"), True, "ok", "warn"),
    ],
)
def test_redis_persistence_and_eviction_are_judged_from_the_live_config(
    args: tuple[str, ...], appendonly: bool, persistence: str, eviction: str
) -> None:
    for server in _redis(*args, appendonly=appendonly):
        report = diagnose(server.url)
        assert report["index.redis.server"].status == "ok"
        assert "CONFIG GET" in report["index.redis.server"].detail
        assert report["index.redis.persistence"].status == persistence
        assert report["index.redis.eviction"].status == eviction
        assert report.ok is (persistence != "fail" and eviction != "fail")
        if persistence != "ok":
            assert "append" in report["index.redis.persistence"].hint


def test_redis_without_config_is_judged_from_info() -> None:
    """Managed services often disable CONFIG; INFO still tells AOF and the eviction policy."""
    for server in _redis("--rename-command", "CONFIG", ""):
        report = diagnose(server.url)
        assert "INFO (CONFIG is disabled)" in report["index.redis.server"].detail
        assert report["index.redis.persistence"].status == "ok"
        assert report["index.redis.eviction"].status == "ok"
    for server in _redis("--rename-command", "CONFIG", "", appendonly=False):
        report = diagnose(server.url)
        assert report["index.redis.persistence"].status == "warn"  # the RDB schedule is unknown


def test_redis_that_answers_neither_config_nor_info_is_reported_unknown() -> None:
    for server in _redis("--rename-command", "CONFIG", "", "--rename-command", "INFO", ""):
        report = diagnose(server.url)
        assert report["index.redis.server"].status == "warn"
        assert "by hand" in report["index.redis.server"].hint
        assert report.ok


def test_redis_judgement_needs_no_server() -> None:
    facts = {"source": "config", "appendonly": True, "appendfsync": "always", "save": "",
             "maxmemory": 0, "maxmemory_policy": "noeviction", "redis_version": "7.2"}  # fmt: skip
    checks = {c.name: c for c in check_redis_settings(facts)}
    assert "nothing lost" in checks["index.redis.persistence"].detail
    assert checks["index.redis.eviction"].status == "ok"


def test_postgres_durability_settings_are_reported(postgres_dsn: str) -> None:
    report = diagnose(postgres_dsn)
    assert report["index.postgres.schema"].status == "ok"
    # the throwaway test cluster runs with fsync off: fast, and worth a warning
    assert report["index.postgres.durability"].status == "warn"
    assert "fsync" in report["index.postgres.durability"].detail


def test_sqlite_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INDEX_URL_ENV, raising=False)
    assert diagnose()["index"].status == "skip"
    monkeypatch.setenv(INDEX_URL_ENV, f"sqlite://{tmp_path}/index.db")
    report = diagnose()
    assert report.ok and report.status == "ok", report.to_text()
    assert report["index.sqlite.journal"].detail == "journal_mode wal"
    assert json.loads(json.dumps(report.to_dict()))["ok"] is True


def test_an_unreachable_index_fails_without_leaking_its_password() -> None:
    from services import refused_port

    report = diagnose(f"redis://:hunter2@127.0.0.1:{refused_port()}/0")
    assert isinstance(report, Report)
    assert report.ok is False and report["index"].status == "fail"
    assert "hunter2" not in report.to_text()
    assert "unavailable" in report["index"].detail
