"""Shards whose manifests rule a query out are never opened; inside a shard only the selected
members are read; ``count``/``select`` answer from manifests without reading any shard."""

import os
from pathlib import Path

import numpy as np
import pytest

import atdata
from atdata.index import Index, SQLiteProvider
from atdata.stores import LocalDiskStore
from query_helpers import CountingOpener, Row, make_rows


@pytest.fixture
def sorted_shards(tmp_path: Path) -> str:
    atdata.write_samples(make_rows(200, 3, sort=True), str(tmp_path / "s-%06d.tar"), maxcount=20)
    return str(tmp_path / "s-{000000..000009}.tar")


def _labels_by_shard(pattern: str) -> list[set[int]]:
    ds = atdata.Dataset[Row](pattern)
    return [{s.label for s in atdata.Dataset[Row](u)} for u in ds.urls]


def test_pruned_shards_are_never_opened(sorted_shards: str) -> None:
    opener = CountingOpener()
    ds = atdata.Dataset[Row](sorted_shards, source_factory=opener)
    per_shard = _labels_by_shard(sorted_shards)
    hit = {f"s-{i:06d}.tar" for i, labels in enumerate(per_shard) if 7 in labels}
    got = [s.label for s in ds.where(ds.fields.label == 7)]
    assert got and set(got) == {7}
    assert set(opener.opened) == hit  # only the shards holding label 7 were read
    opener.opened.clear()
    list(ds.where("label == 7").shuffled(seed=4, batch_size=3))
    assert set(opener.opened) <= hit


def test_an_id_lookup_opens_one_shard(tmp_path: Path) -> None:
    atdata.write_samples(make_rows(400, 5), str(tmp_path / "u-%06d.tar"), maxcount=40)
    opener = CountingOpener()
    ds = atdata.Dataset[Row](str(tmp_path / "u-{000000..000009}.tar"), source_factory=opener)
    [found] = list(ds.where("id == 'id00123'"))
    assert found.id == "id00123"
    assert list(opener.opened) == ["u-000003.tar"]  # the bloom filters ruled out the others


def test_count_and_select_read_no_shard(sorted_shards: str) -> None:
    opener = CountingOpener()
    ds = atdata.Dataset[Row](sorted_shards, source_factory=opener)
    plain = atdata.Dataset[Row](sorted_shards)
    want = [s for s in plain if s.score > 0.5 and s.note is not None]
    assert ds.count("score > 0.5 and note != None") == len(want)
    cols = ds.where("score > 0.5 and note != None").select(["__key__", "score"])
    assert cols["score"] == [s.score for s in want] and len(cols["__key__"]) == len(want)
    assert opener.opened == {}


def test_without_manifests_queries_still_answer(sorted_shards: str) -> None:
    folder = os.path.dirname(sorted_shards)
    for name in os.listdir(folder):
        if name.endswith(".manifest"):
            os.remove(os.path.join(folder, name))
    ds = atdata.Dataset[Row](sorted_shards)
    want = [s.id for s in ds if s.label == 7]
    assert [s.id for s in ds.where("label == 7")] == want and want
    assert ds.count("label == 7") == len(want)
    assert ds.select(["id"])["id"] == [s.id for s in ds]


def test_manifests_are_recorded_in_the_index_and_travel_with_copies(tmp_path: Path) -> None:
    index = Index(SQLiteProvider(tmp_path / "i.db"), LocalDiskStore(tmp_path / "data"))
    entry = index.write(make_rows(60, 1), "team/m", maxcount=25)
    assert all(s.manifest_checksum is not None for s in entry.shards)
    for shard in entry.shards:
        assert os.path.exists(shard.url + ".manifest")
    # registering existing shards with copy=True copies each manifest beside its shard
    atdata.write_samples(make_rows(30, 2), str(tmp_path / "ext-%06d.tar"), maxcount=10)
    copied = index.insert(str(tmp_path / "ext-{000000..000002}.tar"), "team/ext", copy=True)
    assert all(s.manifest_checksum is not None for s in copied.shards)
    assert all(os.path.exists(s.url + ".manifest") for s in copied.shards)
    ds = index.load("team/ext", Row)
    assert ds.count("label < 10") == sum(1 for s in ds if s.label < 10)
    in_place = index.insert(str(tmp_path / "ext-{000000..000002}.tar"), "team/here")
    assert all(s.manifest_checksum is not None for s in in_place.shards)
    index.remove("team/m")
    assert not any(os.path.exists(s.url + ".manifest") for s in entry.shards)


def test_indexed_marks_choose_the_fields(tmp_path: Path) -> None:
    from typing import Annotated

    from numpy.typing import NDArray

    from atdata.manifest import Indexed, Manifest

    @atdata.packable
    class Marked:
        a: Annotated[int, Indexed()]
        b: int
        v: NDArray[np.float32]

    atdata.write_samples(
        [Marked(i, i, np.zeros(2, np.float32)) for i in range(5)], str(tmp_path / "m.tar")
    )
    m = Manifest.from_bytes((tmp_path / "m.tar.manifest").read_bytes(), "m")
    assert set(m.fields) == {"a"} and m.fields["a"].min == 0 and m.fields["a"].max == 4
    ds = atdata.Dataset[Marked](str(tmp_path / "m.tar"))
    assert [s.b for s in ds.where("b >= 3")] == [3, 4]  # an unindexed field: read and tested
