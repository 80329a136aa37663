"""The provider contract: every index provider (SQLite, Redis, PostgreSQL) passes these.

See ``atdata.index.providers.base`` for the guarantees; PROVIDERS in conftest.py lists the
backends these run against.
"""

import multiprocessing
from collections.abc import Callable

import pytest

from atdata.errors import AtdataIndexError, ConflictError
from atdata.index import Provider


def test_get_of_a_missing_record_is_none(provider: Provider) -> None:
    assert provider.get("dataset", "nothing") is None
    with provider.transaction() as tx:
        assert tx.get("dataset", "nothing") is None


def test_records_round_trip_as_json_values(provider: Provider) -> None:
    record = {
        "s": "ünïcødé ✓",
        "i": 2**53,
        "neg": -7,
        "f": 1.5,
        "b": True,
        "n": None,
        "l": [1, "two", [3], {"four": 4}],
        "d": {"nested": {"deep": []}},
    }
    with provider.transaction() as tx:
        tx.put("dataset", "team/mnist@0000000001", record)
        assert tx.get("dataset", "team/mnist@0000000001") == record  # sees its own write
    assert provider.get("dataset", "team/mnist@0000000001") == record


def test_put_replaces_and_create_refuses_an_existing_key(provider: Provider) -> None:
    with provider.transaction() as tx:
        tx.create("label", "prod", {"v": 1})
    with provider.transaction() as tx:
        tx.put("label", "prod", {"v": 2})
    assert provider.get("label", "prod") == {"v": 2}
    with pytest.raises(ConflictError), provider.transaction() as tx:
        tx.create("label", "prod", {"v": 3})
    assert provider.get("label", "prod") == {"v": 2}


def test_kinds_are_separate_namespaces(provider: Provider) -> None:
    with provider.transaction() as tx:
        tx.put("label", "same", {"kind": "label"})
        tx.put("lens", "same", {"kind": "lens"})
    assert provider.get("label", "same") == {"kind": "label"}
    assert provider.get("lens", "same") == {"kind": "lens"}
    assert [k for k, _ in provider.scan("label")] == ["same"]


def test_delete_reports_whether_something_was_removed(provider: Provider) -> None:
    with provider.transaction() as tx:
        tx.put("lens", "a", {})
    with provider.transaction() as tx:
        assert tx.delete("lens", "a") is True
        assert tx.delete("lens", "a") is False
        assert tx.get("lens", "a") is None
    assert provider.get("lens", "a") is None


def test_a_failing_transaction_changes_nothing(provider: Provider) -> None:
    with provider.transaction() as tx:
        tx.put("head", "x", {"next": 1})
    with pytest.raises(RuntimeError), provider.transaction() as tx:
        tx.put("head", "x", {"next": 2})
        tx.put("dataset", "x@0000000001", {"name": "x"})
        tx.delete("head", "x")
        tx.put("head", "x", {"next": 3})
        raise RuntimeError("boom")
    assert provider.get("head", "x") == {"next": 1}
    assert provider.get("dataset", "x@0000000001") is None


def test_scan_is_sorted_by_code_point_and_filtered_by_prefix(provider: Provider) -> None:
    keys = [
        "b@0000000002",
        "a@0000000010",
        "a@0000000002",
        "a-b@0000000001",
        "a/z@0000000001",
        "Z",
        "é",
        "a",
        "ab",
    ]
    with provider.transaction() as tx:
        for k in keys:
            tx.put("dataset", k, {"k": k})
        tx.put("schema", "a@1.0.0", {"k": "other kind"})
    assert [k for k, _ in provider.scan("dataset")] == sorted(keys)
    assert [k for k, _ in provider.scan("dataset", "a@")] == ["a@0000000002", "a@0000000010"]
    assert [r["k"] for _, r in provider.scan("dataset", "a")] == sorted(
        k for k in keys if k.startswith("a")
    )
    assert provider.scan("dataset", "nothing") == []
    with provider.transaction() as tx:
        assert [k for k, _ in tx.scan("dataset", "b")] == ["b@0000000002"]


def test_scan_pages_with_start_after_and_limit(provider: Provider) -> None:
    keys = [f"k{i:04d}" for i in range(23)]
    with provider.transaction() as tx:
        for k in reversed(keys):
            tx.put("lens", k, {"i": k})
    page = provider.scan("lens", limit=10)
    assert [k for k, _ in page] == keys[:10]
    page = provider.scan("lens", start_after=keys[9], limit=10)
    assert [k for k, _ in page] == keys[10:20]
    assert [k for k, _ in provider.iter_scan("lens", page_size=4)] == keys
    assert [k for k, _ in provider.iter_scan("lens", "k001", page_size=3)] == keys[10:20]


def test_bad_kinds_and_keys_are_refused(provider: Provider) -> None:
    with pytest.raises(AtdataIndexError), provider.transaction() as tx:
        tx.put("Bad Kind", "k", {})
    with pytest.raises(AtdataIndexError), provider.transaction() as tx:
        tx.put("label", "", {})
    with pytest.raises(AtdataIndexError), provider.transaction() as tx:
        tx.put("label", "k", {"not json": object()})
    assert provider.scan("label") == []


def test_a_reopened_provider_sees_committed_records(
    provider: Provider, provider_opener: Callable[[], Provider]
) -> None:
    with provider.transaction() as tx:
        tx.put("label", "kept", {"v": 1})
    other = provider_opener()
    try:
        assert other.get("label", "kept") == {"v": 1}
    finally:
        other.close()


def _increment(opener: Callable[[], Provider], times: int) -> None:
    provider = opener()
    try:
        for _ in range(times):
            with provider.transaction() as tx:
                counter = tx.get("head", "counter") or {"next": 0, "seen": []}
                n = counter["next"]
                tx.put("head", "counter", {"next": n + 1})
                tx.create("dataset", f"entry@{n:010d}", {"n": n})
    finally:
        provider.close()


def test_transactions_are_serializable_across_processes(
    provider: Provider, provider_opener: Callable[[], Provider]
) -> None:
    """8 processes x 50 read-modify-write transactions: 400 records, none lost or doubled."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_increment, args=(provider_opener, 50)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
        assert p.exitcode == 0
    assert provider.get("head", "counter") == {"next": 400}
    keys = [k for k, _ in provider.iter_scan("dataset", "entry@")]
    assert keys == [f"entry@{n:010d}" for n in range(400)]
