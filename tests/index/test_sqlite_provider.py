"""SQLite specifics: migrations, WAL, re-opening, and sqlite3 errors translated."""

import sqlite3
import threading
from pathlib import Path

import pytest

from atdata.errors import AtdataIndexError, IndexUnavailableError
from atdata.index import SQLiteProvider
from atdata.index.providers.sqlite import MIGRATIONS


def test_a_new_file_is_migrated_to_the_latest_version_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "index.db"
    provider = SQLiteProvider(path)
    try:
        assert provider.schema_version == MIGRATIONS[-1][0]
    finally:
        provider.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        versions = [r[0] for r in conn.execute("SELECT version FROM atdata_migrations")]
    assert {"atdata_records", "atdata_migrations"} <= tables
    assert versions == [v for v, _ in MIGRATIONS]


def test_an_empty_existing_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    sqlite3.connect(path).close()  # a valid, empty database
    assert path.stat().st_size == 0
    provider = SQLiteProvider(path)
    try:
        assert provider.schema_version == MIGRATIONS[-1][0]
        with provider.transaction() as tx:
            tx.put("label", "a", {"x": 1})
    finally:
        provider.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = [r[0] for r in conn.execute("SELECT version FROM atdata_migrations")]
    assert versions == [v for v, _ in MIGRATIONS]
    with SQLiteProvider(path) as again:
        assert again.get("label", "a") == {"x": 1}


def test_reopening_applies_no_migration_twice_and_keeps_records(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    first = SQLiteProvider(path)
    with first.transaction() as tx:
        tx.put("label", "kept", {"x": 1})
    first.close()
    for _ in range(3):
        again = SQLiteProvider(path)
        assert again.get("label", "kept") == {"x": 1}
        again.close()
    with sqlite3.connect(path) as conn:
        count = conn.execute("SELECT COUNT(*) FROM atdata_migrations").fetchone()[0]
    assert count == len(MIGRATIONS)


def test_many_providers_opening_a_fresh_file_at_once_agree(tmp_path: Path) -> None:
    """Switching a new file to WAL can find it locked without SQLite waiting: every opener must
    still succeed (it failed in about 1 of 20 rounds before openers retried)."""
    for round_ in range(40):
        path = tmp_path / f"index-{round_}.db"
        errors: list[BaseException] = []

        def open_and_write(i: int, path: Path = path, errors: list[BaseException] = errors) -> None:
            try:
                p = SQLiteProvider(path)
                with p.transaction() as tx:
                    tx.put("label", f"l{i}", {"i": i})
                p.close()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_and_write, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], f"round {round_}"
        with SQLiteProvider(path) as p:
            assert len(p.scan("label")) == 8
            assert p.schema_version == MIGRATIONS[-1][0]


def test_a_file_from_a_newer_atdata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    SQLiteProvider(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO atdata_migrations VALUES (999, 'future')")
    with pytest.raises(AtdataIndexError, match="newer"):
        SQLiteProvider(path)


def test_a_file_that_is_not_a_database_is_an_atdata_error(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(AtdataIndexError, match=str(path)) as info:
        SQLiteProvider(path)
    assert isinstance(info.value.__cause__, sqlite3.Error)


def test_an_unopenable_path_is_index_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(IndexUnavailableError):
        SQLiteProvider(tmp_path / "file" / "index.db")


def test_a_write_lock_held_too_long_is_index_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    holder = SQLiteProvider(path)
    waiter = SQLiteProvider(path, timeout=0.2)
    try:
        with holder.transaction() as tx:
            tx.put("label", "a", {})
            with pytest.raises(IndexUnavailableError, match="retry"), waiter.transaction() as tx2:
                tx2.put("label", "b", {})
        assert waiter.get("label", "a") == {}  # readers are never blocked afterwards
    finally:
        holder.close()
        waiter.close()


def test_readers_see_committed_data_while_a_writer_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    writer, reader = SQLiteProvider(path), SQLiteProvider(path, timeout=0.2)
    try:
        with writer.transaction() as tx:
            tx.put("label", "old", {})
        with writer.transaction() as tx:
            tx.put("label", "new", {})
            assert [k for k, _ in reader.scan("label")] == ["old"]  # WAL snapshot, no waiting
        assert [k for k, _ in reader.scan("label")] == ["new", "old"]
    finally:
        writer.close()
        reader.close()


def test_transactions_do_not_nest_and_closed_providers_refuse(tmp_path: Path) -> None:
    p = SQLiteProvider(tmp_path / "index.db")
    with pytest.raises(AtdataIndexError, match="nest"), p.transaction(), p.transaction():
        pass
    p.close()
    p.close()
    with pytest.raises(AtdataIndexError, match="closed"):
        p.get("label", "x")
