"""``Index.write`` writes member-layout datasets (a typed member-layout sample type, or dicts with
``layout="members"``) into the index's store; ``load_dataset("@local/name")`` reads them back with
no class, sample for sample, and ``webdataset`` reads the stored shards as members."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import webdataset as wds

import atdata
from atdata import Index, InvalidArgumentError


@atdata.packable
class Tagged:
    caption: str = atdata.member("txt")
    label: int = atdata.member("cls")
    meta: dict[str, Any] = atdata.member("json")


def _dicts(n: int) -> list[dict[str, Any]]:
    return [{"txt": f"caption {i}", "cls": i % 4, "json": {"i": i}} for i in range(n)]


def test_a_member_layout_type_round_trips_through_the_index(tmp_index: Index) -> None:
    samples = [Tagged(caption=d["txt"], label=d["cls"], meta=d["json"]) for d in _dicts(11)]
    entry = tmp_index.write(samples, "tagged", maxcount=4)
    schema = tmp_index.get_schema(entry.schema_ref)
    assert schema.schema.layout == "members"
    ds = atdata.load_dataset("@local/tagged", split="train", index=tmp_index)
    got = list(ds)
    assert len(ds) == len(got) == 11
    assert [(s.caption, s.label, s.meta) for s in got] == [
        (s.caption, s.label, s.meta) for s in samples
    ]
    assert ds[5].caption == "caption 5"
    # the stored shards are member layout: webdataset sees one member per field
    first = next(iter(wds.WebDataset(entry.shards[0].url, shardshuffle=False)))
    assert {"txt", "cls", "json"} <= set(first)


def test_dicts_written_with_members_layout_load_back_without_a_class(tmp_index: Index) -> None:
    entry = tmp_index.write(_dicts(9), "plain", maxcount=4, layout="members")
    assert entry.count == 9
    ds = atdata.load_dataset("@local/plain", split="train", index=tmp_index)
    assert [dict(s) for s in ds] == _dicts(9)
    assert len(ds) == 9 and dict(ds[8]) == _dicts(9)[8]
    first = next(iter(wds.WebDataset(entry.shards[0].url, shardshuffle=False)))
    assert first["txt"] == b"caption 0" and first["cls"] == b"0"


def test_load_in_a_fresh_process_needs_no_class(tmp_index: Index, tmp_path: Path) -> None:
    tmp_index.write(_dicts(5), "fresh", layout="members")
    code = (
        "import atdata; ds = atdata.load_dataset('@local/fresh', split='train'); "
        "print([(s['txt'], s['cls'], s['json']['i']) for s in ds])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str([(f"caption {i}", i % 4, i) for i in range(5)])


def test_a_bad_layout_is_refused_before_anything_is_recorded(tmp_index: Index) -> None:
    with pytest.raises(InvalidArgumentError, match="layout"):
        tmp_index.write(_dicts(2), "bad", layout="columns")  # type: ignore[arg-type]
    with pytest.raises(atdata.NotFoundError):
        tmp_index.get("bad")
