"""Faults: the Redis or PostgreSQL server goes away in the middle of a run and comes back.

While it is away, every operation fails promptly with IndexUnavailableError (nothing hangs,
nothing from redis-py or psycopg leaks); once it is back, the same provider object works again
without being reopened; and no transaction is ever half applied. The servers here are our own
(``restartable_redis`` with AOF ``appendfsync always``, ``restartable_postgres`` with
``synchronous_commit`` on), restarted on the same port, so every acknowledged commit must survive
a crash (SIGKILL, ``pg_ctl stop -m immediate``).
"""

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from atdata.errors import AtdataError, IndexUnavailableError
from atdata.index import Index
from atdata.index.providers.url import provider_from_url
from atdata.stores import LocalDiskStore
from services import PostgresCluster, RedisServer, restartable_postgres, restartable_redis

__all__ = ["restartable_postgres", "restartable_redis"]  # fixtures used below


@dataclass
class Server:
    url: str
    crash: Callable[[], None]
    stop: Callable[[], None]
    start: Callable[[], None]


@pytest.fixture(params=["redis", "postgres"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    if request.param == "redis":
        r: RedisServer = request.getfixturevalue("restartable_redis")
        yield Server(r.url, lambda: r.stop(kill=True), r.stop, r.start)
    else:
        pg: PostgresCluster = request.getfixturevalue("restartable_postgres")
        yield Server(pg.dsn, lambda: pg.stop(mode="immediate"), pg.stop, pg.start)


def _fails_promptly(op: Callable[[], object]) -> IndexUnavailableError:
    started = time.monotonic()
    with pytest.raises(IndexUnavailableError) as info:
        op()
    # a hang guard, not a speed check: the provider gives up after its 5 s timeout
    assert time.monotonic() - started < 60, "an operation hung while the server was away"
    assert "unavailable" in str(info.value) or "loading" in str(info.value)
    return info.value


@pytest.mark.parametrize("how", ["crash", "clean stop"])
def test_operations_fail_clearly_while_the_server_is_away_and_work_when_it_is_back(
    server: Server, how: str
) -> None:
    provider = provider_from_url(server.url, timeout=5)
    try:
        with provider.transaction() as tx:
            tx.put("head", "a", {"n": 1})
        (server.crash if how == "crash" else server.stop)()

        def write() -> None:
            with provider.transaction() as tx:
                tx.put("head", "b", {"n": 2})

        for op in (lambda: provider.get("head", "a"), lambda: provider.scan("head"), write):
            for _ in range(2):  # the first failure may find a dead connection, the second none
                _fails_promptly(op)

        server.start()
        assert provider.get("head", "a") == {"n": 1}  # the same provider object, reconnected
        assert provider.get("head", "b") is None
        write()
        assert [k for k, _ in provider.scan("head")] == ["a", "b"]
    finally:
        provider.close()


def test_a_crash_in_the_middle_of_a_run_leaves_no_partial_transaction(server: Server) -> None:
    """A writer commits 3 records per transaction in a loop while the server crashes and
    comes back. Afterwards every acknowledged transaction is there, and every transaction that
    is there is there completely."""
    provider = provider_from_url(server.url, timeout=5)
    acked: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            try:
                with provider.transaction() as tx:
                    n = (tx.get("head", "counter") or {"next": 0})["next"]
                    tx.create("dataset", f"run#{n:010d}", {"n": n, "shards": list(range(50))})
                    tx.put("label", f"l{n:010d}", {"dataset": "run", "version": n})
                    tx.put("head", "counter", {"next": n + 1})
                acked.append(n)
            except AtdataError as exc:
                failures.append(exc)
                time.sleep(0.02)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        _wait_for(lambda: len(acked) >= 30)
        server.crash()
        _wait_for(lambda: len(failures) >= 3)
        server.start()
        before = len(acked)
        _wait_for(lambda: len(acked) >= before + 30)
    finally:
        stop.set()
        thread.join(30)
    try:
        assert all(isinstance(f, IndexUnavailableError) for f in failures), failures[:3]
        datasets = {r["n"] for _, r in provider.iter_scan("dataset")}
        labels = {r["version"] for _, r in provider.iter_scan("label")}
        counter = provider.get("head", "counter")
        assert set(acked) <= datasets
        assert datasets == labels  # no transaction half applied
        assert counter == {"next": len(datasets)}
        assert datasets == set(range(len(datasets)))  # serial: no gaps, no duplicates
    finally:
        provider.close()


def test_index_writes_across_a_restart_leave_only_complete_entries(
    server: Server, tmp_path: Path
) -> None:
    """Through the Index facade: entries committed before and after a crash load; writes that
    failed left no entry, and gc cleans what they left in the store."""
    from index_types import Point

    def open_index() -> Index:
        return Index(provider_from_url(server.url, timeout=5), LocalDiskStore(tmp_path / "data"))

    index = open_index()
    written: list[int] = []
    for i in range(5):
        written.append(index.write([Point(x=i, name="before")], "ds").version)
    server.crash()
    for i in range(3):
        with pytest.raises(IndexUnavailableError):
            index.write([Point(x=100 + i, name="during")], "ds")
    server.start()
    for i in range(5):
        written.append(index.write([Point(x=10 + i, name="after")], "ds").version)
    history = index.history("ds")
    assert [e.version for e in history] == written == sorted(set(written))
    assert sorted(p.x for e in history for p in index.load(e, Point)) == [*range(5), *range(10, 15)]
    index.gc(pending_age=timedelta(0))
    assert [e.version for e in index.history("ds")] == written
    index.close()


def _wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the writer")
        time.sleep(0.01)
