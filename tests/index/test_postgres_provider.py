"""PostgreSQL specifics: versioned migrations, clean pooled connections, the writers' lock,
code-point order, and values jsonb could not keep.

Each test works in a schema of its own in the session's throwaway cluster (``postgres_dsn``).
"""

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from index_helpers import check_writer_waits_for_the_lock

from atdata.errors import AtdataIndexError, IndexUnavailableError
from atdata.index.providers.postgres import MIGRATIONS, PostgresProvider

psycopg = pytest.importorskip("psycopg", reason="psycopg missing: uv sync --all-extras")


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _sql(dsn: str, query: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, args or None)
        return cur.fetchall() if cur.description else []


def test_a_new_schema_is_created_and_migrated_once(postgres_dsn: str, schema: str) -> None:
    first = PostgresProvider(postgres_dsn, schema=schema)
    assert first.schema_version == MIGRATIONS[-1][0]
    with first.transaction() as tx:
        tx.put("label", "a", {"x": 1})
    first.close()
    again = PostgresProvider(postgres_dsn, schema=schema)
    assert again.get("label", "a") == {"x": 1}
    again.close()
    rows = _sql(postgres_dsn, f'SELECT version FROM "{schema}".atdata_schema_version')
    assert [r[0] for r in rows] == [v for v, _ in MIGRATIONS]
    collation = _sql(
        postgres_dsn,
        "SELECT collation_name FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = 'atdata_records' AND column_name = 'key'",
        schema,
    )
    assert collation == [("C",)]


def test_providers_opening_a_fresh_schema_at_once_agree(postgres_dsn: str, schema: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def open_and_write(i: int) -> None:
        try:
            start.wait()
            p = PostgresProvider(postgres_dsn, schema=schema)
            with p.transaction() as tx:
                tx.put("label", f"p{i}", {})
            p.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_and_write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = _sql(postgres_dsn, f'SELECT version FROM "{schema}".atdata_schema_version')
    assert [r[0] for r in rows] == [v for v, _ in MIGRATIONS]
    rows = _sql(postgres_dsn, f'SELECT key FROM "{schema}".atdata_records ORDER BY key')
    assert [r[0] for r in rows] == [f"p{i}" for i in range(6)]


def test_a_schema_migrated_by_a_newer_atdata_is_refused(postgres_dsn: str, schema: str) -> None:
    PostgresProvider(postgres_dsn, schema=schema).close()
    _sql(postgres_dsn, f'INSERT INTO "{schema}".atdata_schema_version (version) VALUES (999)')
    with pytest.raises(AtdataIndexError, match="newer than this atdata"):
        PostgresProvider(postgres_dsn, schema=schema)


def test_a_failed_statement_leaves_the_pooled_connection_clean(
    postgres_dsn: str, schema: str
) -> None:
    """A server-side error rolls the whole transaction back, and the one pooled connection
    serves the next operations (it is not left 'idle in transaction (aborted)')."""
    provider = PostgresProvider(postgres_dsn, schema=schema, min_size=1, max_size=1)
    _sql(
        postgres_dsn,
        f"""CREATE FUNCTION "{schema}".refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.key = 'boom' THEN RAISE EXCEPTION 'refused by a test trigger'; END IF;
          RETURN NEW;
        END $$""",
    )
    _sql(
        postgres_dsn,
        f'CREATE TRIGGER refuse BEFORE INSERT ON "{schema}".atdata_records '
        f'FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse()',
    )
    with pytest.raises(AtdataIndexError, match="refused by a test trigger") as info:
        with provider.transaction() as tx:
            tx.put("label", "before", {})
            tx.put("label", "boom", {})
    assert not isinstance(info.value, IndexUnavailableError)
    assert isinstance(info.value.__cause__, psycopg.Error)  # translated, with the cause kept
    assert provider.get("label", "before") is None  # rolled back
    with provider.transaction() as tx:
        tx.put("label", "after", {})
    assert [k for k, _ in provider.scan("label")] == ["after"]
    states = _sql(
        postgres_dsn,
        "SELECT state FROM pg_stat_activity WHERE application_name = 'atdata' AND datname = "
        "current_database()",
    )
    assert states and all(s == ("idle",) for s in states)
    provider.close()


def test_a_writer_waits_for_the_lock_then_gives_up_while_reads_go_on(
    postgres_dsn: str, schema: str
) -> None:
    check_writer_waits_for_the_lock(
        PostgresProvider(postgres_dsn, schema=schema),
        PostgresProvider(postgres_dsn, schema=schema, timeout=0.3),
    )


def test_records_come_back_exactly_even_where_jsonb_would_change_them(
    postgres_dsn: str, schema: str
) -> None:
    provider = PostgresProvider(postgres_dsn, schema=schema)
    record = {"big": 1e300, "tiny": 5e-324, "nul": "a\x00b", "neg0": -0.0, "float": 2.0}
    with provider.transaction() as tx:
        tx.put("dataset", "odd", record)
    back = provider.get("dataset", "odd")
    assert back == record
    assert back is not None and all(type(back[k]) is type(v) for k, v in record.items())
    with pytest.raises(AtdataIndexError, match="NUL"), provider.transaction() as tx:
        tx.put("dataset", "a\x00b", {})
    provider.close()


def test_keys_sort_by_code_point_beyond_the_basic_plane(postgres_dsn: str, schema: str) -> None:
    provider = PostgresProvider(postgres_dsn, schema=schema)
    keys = ["\U0001f600", "\uffff", "\ue000", "z", "Z", "é", "\u00ff", "a"]
    with provider.transaction() as tx:
        for k in keys:
            tx.put("label", k, {})
    assert [k for k, _ in provider.scan("label")] == sorted(keys)
    provider.close()


def test_unreachable_servers_and_bad_names_fail_clearly(postgres_dsn: str) -> None:
    from services import refused_port

    port = refused_port()
    with pytest.raises(IndexUnavailableError, match="unavailable"):
        PostgresProvider(f"postgresql://postgres:hunter2@127.0.0.1:{port}/x")
    with pytest.raises(AtdataIndexError) as info:
        PostgresProvider(f"postgresql://postgres:hunter2@127.0.0.1:{port}/x")
    assert "hunter2" not in str(info.value)
    with pytest.raises(AtdataIndexError, match="schema name"):
        PostgresProvider(postgres_dsn, schema='x"; DROP TABLE y; --')


def test_a_pooled_connection_killed_while_idle_is_replaced_before_it_is_used(
    postgres_dsn: str, schema: str
) -> None:
    """The pool checks a connection idle for more than a second before lending it: one the
    server dropped meanwhile is replaced, and the caller never sees the failure."""
    provider = PostgresProvider(postgres_dsn, schema=schema, min_size=1, max_size=1)
    try:
        with provider.transaction() as tx:
            tx.put("label", "a", {"n": 1})
        assert provider.get("label", "a") == {"n": 1}
        mine = f"SELECT pid FROM pg_stat_activity WHERE application_name = 'atdata' AND query LIKE '%\"{schema}\"%'"
        killed = {row[0] for row in _sql(postgres_dsn, mine)}
        assert killed
        for pid in killed:
            _sql(postgres_dsn, "SELECT pg_terminate_backend(%s)", pid)
        time.sleep(1.2)  # longer than the window in which a returned connection is trusted
        assert provider.get("label", "a") == {"n": 1}
        now_serving = {row[0] for row in _sql(postgres_dsn, mine)}
        assert now_serving and not now_serving & killed
    finally:
        provider.close()
