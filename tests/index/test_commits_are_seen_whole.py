"""Readers on every provider see a commit entirely or not at all, and keys in code-point order
even outside the Basic Multilingual Plane (where UTF-16 order would differ)."""

import threading

from atdata.index import Provider


def test_a_concurrent_reader_never_sees_half_a_commit(provider: Provider) -> None:
    """A writer moves a total of 100 between 10 records, one transaction per move; a reader
    that scans meanwhile must always find the total intact (each scan is one snapshot)."""
    with provider.transaction() as tx:
        for i in range(10):
            tx.put("head", f"acct{i}", {"balance": 10})
    stop = threading.Event()
    totals: list[int] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                totals.append(sum(r["balance"] for _, r in provider.scan("head")))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(150):
            src, dst = f"acct{n % 10}", f"acct{(n * 7 + 3) % 10}"
            if src == dst:
                continue
            with provider.transaction() as tx:
                a, b = tx.get("head", src), tx.get("head", dst)
                assert a is not None and b is not None
                tx.put("head", src, {"balance": a["balance"] - 1})
                tx.put("head", dst, {"balance": b["balance"] + 1})
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert totals and set(totals) == {100}


def test_keys_sort_by_code_point_beyond_the_basic_plane(provider: Provider) -> None:
    keys = ["\U0001f600", "\U00010000", "\uffff", "\ue000", "\ud7ff", "z", "Z", "é", "a"]
    with provider.transaction() as tx:
        for k in keys:
            tx.put("label", k, {"k": k})
        assert [k for k, _ in tx.scan("label")] == sorted(keys)  # own writes, merged in order
    assert [k for k, _ in provider.scan("label")] == sorted(keys)
    assert [k for k, _ in provider.scan("label", start_after="\uffff")] == sorted(keys)[-2:]
    assert [k for k, _ in provider.scan("label", "\U0001f5ff")] == []
    assert [k for k, _ in provider.scan("label", "\U0001f600")] == ["\U0001f600"]


def test_a_transaction_scan_sees_its_own_puts_and_deletes_in_order(provider: Provider) -> None:
    with provider.transaction() as tx:
        for i in range(0, 20, 2):
            tx.put("lens", f"k{i:02d}", {"i": i})
    with provider.transaction() as tx:
        tx.delete("lens", "k00")
        tx.delete("lens", "k02")
        tx.put("lens", "k03", {"i": 3})
        tx.put("lens", "k04", {"i": -4})
        assert [(k, r["i"]) for k, r in tx.scan("lens", limit=3)] == [
            ("k03", 3),
            ("k04", -4),
            ("k06", 6),
        ]
        page = tx.scan("lens", start_after="k03", limit=2)
        assert [k for k, _ in page] == ["k04", "k06"]
        assert [k for k, _ in tx.scan("lens", "k1")] == ["k10", "k12", "k14", "k16", "k18"]
    assert [k for k, _ in provider.scan("lens", limit=2)] == ["k03", "k04"]
