"""Redis specifics: the key prefix is a hard boundary, lookups never SCAN, the writers' lock.

These tests run their own redis-server (``restartable_redis``), never a shared one: they create
ACL users, read command statistics and plant keys of their own.
"""

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from index_helpers import check_writer_waits_for_the_lock

from atdata.errors import AtdataIndexError, IndexUnavailableError
from atdata.index import Index
from atdata.index.providers.redis import LAYOUT_VERSION, RedisProvider
from atdata.stores import LocalDiskStore
from services import RedisServer, restartable_redis

redis = pytest.importorskip("redis", reason="redis-py missing: uv sync --all-extras")

__all__ = ["restartable_redis"]  # a fixture, imported for this module's tests


_LOCK = "atdata:_lock"


def _until(condition: Callable[[], object], timeout: float = 30.0) -> None:
    """Wait for an event the server reports (a key expired), not for a length of time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


@pytest.fixture
def admin(restartable_redis: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(restartable_redis.url)
    yield client
    client.close()


def _command_counts(admin: redis.Redis) -> dict[str, int]:
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in admin.info("commandstats").items()}


def test_nothing_outside_the_prefix_is_ever_read_written_or_deleted(
    restartable_redis: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    """The provider runs as an ACL user that may only touch ``team:*``: any access outside the
    prefix would fail with NOPERM. Keys planted around the prefix stay exactly as they were."""
    planted = {
        b"other:key": b"1",
        b"team": b"no colon",
        b"teamX:dataset:records": b"lookalike",
        b"atdata:_meta": b"the default prefix",
        b"team_lock": b"almost",
    }
    for key, value in planted.items():
        admin.set(key, value)
    admin.acl_setuser(
        "scoped", enabled=True, passwords=["+secret"], keys=["team:*"], commands=["+@all"]
    )
    admin.config_resetstat()
    url = f"redis://scoped:secret@127.0.0.1:{restartable_redis.port}/0"

    from index_types import Point

    from atdata.diagnose import diagnose

    with Index(RedisProvider(url, prefix="team:"), LocalDiskStore(tmp_path / "data")) as index:
        for i in range(3):
            index.write([Point(x=i, name=str(i))], "points")
        index.write([Point(x=9, name="9")], "other")
        index.label("prod", "points@2")
        assert index.get("points").version == 3
        assert index.get("points@1").version == 1
        assert [e.name for e in index.list_datasets()] == ["other", "points"]
        assert [e.version for e in index.history("points")] == [1, 2, 3]
        assert index.get_label("prod").target == "points@2"
        index.remove("points@3")
        assert index.get("points").version == 2
        index.gc()
        report = diagnose(provider=index.repository().provider)  # CONFIG GET needs no keys
        assert report.ok, report.to_text()

    calls = _command_counts(admin)  # before this test's own commands below
    assert not {"scan", "keys", "flushdb", "flushall", "sscan", "hscan", "zscan"} & set(calls)
    for key, value in planted.items():
        assert admin.get(key) == value
    assert all(k.startswith(b"team:") for k in admin.keys("*") if k not in planted)


def test_lookups_and_listing_cost_the_same_at_any_size(
    restartable_redis: RedisServer, admin: redis.Redis
) -> None:
    """Lookups are one HGET, a page of a scan one script: the commands sent do not grow with
    the number of records."""
    provider = RedisProvider(restartable_redis.url)
    try:
        with provider.transaction() as tx:
            for i in range(2000):
                tx.put("dataset", f"name{i:05d}#0000000001", {"i": i})
        provider.scan("dataset", limit=1)  # loads the scan script into the server
        admin.config_resetstat()
        assert provider.get("dataset", "name01234#0000000001") == {"i": 1234}
        page = provider.scan("dataset", "name019", limit=5)
        assert [r["i"] for _, r in page] == [1900, 1901, 1902, 1903, 1904]
        calls = _command_counts(admin)
        calls.pop("config|resetstat")
        # one HGET; one script running one ZRANGEBYLEX and one HMGET
        assert calls == {"hget": 1, "evalsha": 1, "zrangebylex": 1, "hmget": 1}
    finally:
        provider.close()


def test_a_writer_waits_for_the_lock_then_gives_up_with_a_clear_error(
    restartable_redis: RedisServer,
) -> None:
    check_writer_waits_for_the_lock(
        RedisProvider(restartable_redis.url),
        RedisProvider(restartable_redis.url, timeout=0.3),
    )


def test_the_lock_of_a_crashed_writer_expires(
    restartable_redis: RedisServer, admin: redis.Redis
) -> None:
    admin.set(_LOCK, "a token nobody holds", px=400)
    provider = RedisProvider(restartable_redis.url)
    with provider.transaction() as tx:
        # the writer holds the lock only once the stale one is gone: ordering, not a time window
        assert admin.get(_LOCK) not in (None, b"a token nobody holds")
        tx.put("label", "after", {})
    assert provider.get("label", "after") == {}
    provider.close()


def test_a_transaction_that_lost_its_lock_writes_nothing(
    restartable_redis: RedisServer, admin: redis.Redis
) -> None:
    slow = RedisProvider(restartable_redis.url, lock_ttl=0.2)
    other = RedisProvider(restartable_redis.url)
    with pytest.raises(IndexUnavailableError, match="lost the writer lock"):
        with slow.transaction() as tx:
            tx.put("label", "slow-1", {})
            tx.put("label", "slow-2", {})
            _until(lambda: not admin.exists(_LOCK))  # the lock expired (the server says so)
            with other.transaction() as tx2:
                tx2.put("label", "other", {})
    assert [k for k, _ in other.scan("label")] == ["other"]
    slow.close()
    other.close()


def test_a_long_transaction_keeps_its_lock_alive(
    restartable_redis: RedisServer, admin: redis.Redis
) -> None:
    ttl_ms = 1500
    long = RedisProvider(restartable_redis.url, lock_ttl=ttl_ms / 1000)
    other = RedisProvider(restartable_redis.url, timeout=0.1)
    with long.transaction() as tx:
        for i in range(5):  # each round waits until half the TTL is spent: > 2 TTLs in all
            tx.put("label", f"l{i}", {})
            with pytest.raises(IndexUnavailableError):
                with other.transaction() as tx2:
                    tx2.put("label", "intruder", {})
            _until(lambda: 0 <= admin.pttl(_LOCK) < ttl_ms // 2 or not admin.exists(_LOCK))
    assert [k for k, _ in other.scan("label")] == [f"l{i}" for i in range(5)]
    long.close()
    other.close()


def test_an_index_of_a_newer_layout_is_refused(
    restartable_redis: RedisServer, admin: redis.Redis
) -> None:
    admin.hset("future:_meta", "layout", LAYOUT_VERSION + 1)
    with pytest.raises(AtdataIndexError, match="layout version"):
        RedisProvider(restartable_redis.url, prefix="future:")
    provider = RedisProvider(restartable_redis.url, prefix="present:")
    assert admin.hget("present:_meta", "layout") == str(LAYOUT_VERSION).encode()
    provider.close()


def test_a_hash_tag_prefix_keeps_every_key_in_one_cluster_slot(
    restartable_redis: RedisServer, admin: redis.Redis
) -> None:
    provider = RedisProvider(restartable_redis.url, prefix="{idx}:")
    with provider.transaction() as tx:
        tx.put("dataset", "a", {})
        tx.put("label", "b", {})
    from redis.crc import key_slot

    keys = admin.keys("*")
    assert len(keys) >= 5  # meta, and records + keys of two kinds
    assert len({key_slot(k) for k in keys}) == 1
    provider.close()


def test_unreachable_servers_and_bad_credentials_fail_clearly(
    restartable_redis: RedisServer, admin: redis.Redis
) -> None:
    from services import refused_port

    with pytest.raises(IndexUnavailableError, match="unavailable"):
        RedisProvider(f"redis://127.0.0.1:{refused_port()}/0")
    admin.acl_setuser("someone", enabled=True, passwords=["+right"], keys=["*"], commands=["+@all"])
    with pytest.raises(AtdataIndexError) as info:
        RedisProvider(f"redis://someone:wrong-password@127.0.0.1:{restartable_redis.port}/0")
    assert "wrong-password" not in str(info.value)
    with pytest.raises(AtdataIndexError, match="prefix"):
        RedisProvider(restartable_redis.url, prefix="")
