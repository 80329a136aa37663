"""``gc()`` skips a malformed trash or pending record (warning, listed in the result) and still
cleans everything else, on every provider."""

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from index_helpers import make_samples

from atdata.errors import AtdataWarning
from atdata.index import Index
from atdata.stores import LocalDiskStore

MALFORMED: dict[str, dict[str, Any]] = {
    "trash": {
        "nameless#0000000001": {"version": 1},
        "num#0000000001": {"name": 5, "version": 1},
        "badversion#0000000001": {"name": "badversion", "version": "one"},
        "zero#0000000000": {"name": "zero", "version": 0},
        "../up#0000000001": {"name": "../up", "version": 1},
        "newline\n#0000000001": {"name": "newline\n", "version": 1},
        "urls#0000000001": {"name": "urls", "version": 1, "urls": "not a list"},
        "other#0000000001": {"name": "elsewhere", "version": 1},
    },
    "pending": {
        "p#0000000001": {"name": "p"},
        "q#0000000001": {"name": "q", "version": 1, "write_id": "../../../etc"},
        "r#0000000001": {"name": "r", "version": True},
    },
}


def test_gc_skips_malformed_records_and_cleans_the_rest(
    index: Index, store: LocalDiskStore
) -> None:
    provider = index.repository().provider
    # a good trash record: a removal that stopped after the entry went (as after a crash)
    removed = index.write(make_samples(2), "removed")
    with provider.transaction() as tx:
        tx.delete("dataset", "removed#0000000001")
        tx.put(
            "trash",
            "removed#0000000001",
            {"name": "removed", "version": 1, "urls": removed.urls, "created_at": "x"},
        )
    assert all(os.path.exists(u) for u in removed.urls)
    # a good pending record: an abandoned write with a file in its location
    with provider.transaction() as tx:
        tx.put(
            "pending",
            "abandoned#0000000001",
            {"name": "abandoned", "version": 1, "write_id": "0123456789abcdef", "created_at": "x"},
        )
        for kind, records in MALFORMED.items():
            for key, record in records.items():
                tx.put(kind, key, record)
    leftover = store.root / "abandoned" / "1" / "0123456789abcdef" / "abandoned-000000.tar"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"x" * 100)

    with pytest.warns(AtdataWarning, match="gc skipped the malformed") as caught:
        report = index.gc(pending_age=timedelta(0))
    assert sorted(report) == ["local:abandoned@1", "local:removed@1"]
    assert len(caught) == len(report.skipped) == 11
    for kind, records in MALFORMED.items():
        for key in records:
            assert any(s.startswith(f"{kind} record {key!r}") for s in report.skipped), key
    assert not any(os.path.exists(u) for u in removed.urls)
    assert not leftover.exists()
    assert [p for p in Path(store.root).rglob("*") if p.is_file()] == []
    # the malformed records stay for a person to look at; gc goes on skipping them
    assert len(provider.scan("trash")) == 8 and len(provider.scan("pending")) == 3
    with pytest.warns(AtdataWarning):
        assert index.gc(pending_age=timedelta(0)) == []
