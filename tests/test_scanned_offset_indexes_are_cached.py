"""A shard without a sidecar is scanned once; the scan is kept under ``$ATDATA_HOME/offsets``
(never beside the shard) and used again only while it still describes the shard: a rewritten
shard is scanned again, and a cached index that a read proves wrong is dropped."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from atdata import AtdataWarning, Dataset
from atdata.shards import scancache
from atdata.shards.offsets import OffsetIndex
from atdata.shards.reader import scan_offsets
from atdata.sources import open_source


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _shard(path: Path, n: int, tag: str = "k") -> None:
    with wds.TarWriter(str(path)) as sink:
        for i in range(n):
            sink.write({"__key__": f"{tag}{i:04d}", "cls": i, "txt": f"{tag} {i}"})


def test_one_scan_then_the_cache(tmp_path: Path, home: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    path = shards / "a.tar"
    _shard(path, 5)
    with pytest.warns(AtdataWarning, match="scanning it once"):
        assert len(Dataset(str(path))) == 5
    assert sorted(os.listdir(shards)) == ["a.tar"]  # nothing written beside the shard
    assert len(list((home / "offsets").glob("*.idx"))) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scan, no warning
        ds = Dataset(str(path))
        assert len(ds) == 5 and ds[4]["txt"] == "k 4" and ds.get("k0002")["cls"] == 2


def test_a_rewritten_shard_is_scanned_again(tmp_path: Path) -> None:
    path = tmp_path / "b.tar"
    _shard(path, 4, "a")
    with pytest.warns(AtdataWarning):
        assert len(Dataset(str(path))) == 4
    before = os.stat(path)
    _shard(path, 4, "z")  # same size, other keys
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # even with the old mtime
    assert os.path.getsize(path) == before.st_size
    with pytest.warns(AtdataWarning, match="scanning it once"):
        ds = Dataset(str(path))
        assert ds.get("z0003")["txt"] == "z 3"
    _shard(path, 7, "a")
    with pytest.warns(AtdataWarning, match="scanning it once"):
        assert len(Dataset(str(path))) == 7


def test_a_cached_index_a_read_proves_wrong_is_dropped(tmp_path: Path, home: Path) -> None:
    path = tmp_path / "c.tar"
    _shard(path, 3)
    src = open_source(str(path))
    good = scan_offsets(src)
    assert good.starts is not None and good.ends is not None
    swapped = OffsetIndex(  # the keys in the wrong places
        list(reversed(good.keys)),
        good.header_offsets,
        good.sizes,
        good.shard_size,
        None,
        good.starts,
        good.ends,
    )
    scancache.save(src, str(path), None, swapped)  # as if it had been cached for this shard
    ds = Dataset(str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ds.get("k0000")["cls"] == 0  # the wrong index is found out, dropped, rescanned
        assert [s["cls"] for s in ds.ordered()] == [0, 1, 2]
    assert any("not used" in str(w.message) for w in caught)
    again = scancache.load(src, str(path), None)
    assert again is not None and again.keys == ["k0000", "k0001", "k0002"]
    assert np.array_equal(again.header_offsets, good.header_offsets)


def test_an_unwritable_home_only_costs_a_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    monkeypatch.setenv("ATDATA_HOME", str(blocker))
    path = tmp_path / "d.tar"
    _shard(path, 2)
    for _ in range(2):
        with pytest.warns(AtdataWarning, match="scanning it once"):
            assert len(Dataset(str(path))) == 2


def test_typed_iteration_through_a_wrong_sidecar_rescans(tmp_path: Path) -> None:
    import atdata

    @atdata.packable
    class Item:
        label: int = atdata.member("cls")
        text: str = atdata.member("txt")

    written = atdata.write_samples([Item(i, f"t{i}") for i in range(4)], str(tmp_path / "w.tar"))
    side = Path(written.urls[0] + ".idx")
    good = OffsetIndex.from_bytes(side.read_bytes(), "test")
    wrong = OffsetIndex(
        list(reversed(good.keys)),
        good.header_offsets,
        good.sizes,
        good.shard_size,
        good.sha256,
        good.starts,
        good.ends,
    )
    side.write_bytes(wrong.to_bytes())
    with pytest.warns(AtdataWarning, match="not used"):
        got = [(s.label, s.text) for s in Dataset[Item](written.urls).shuffled(seed=0)]
    assert sorted(got) == [(i, f"t{i}") for i in range(4)]
    with pytest.warns(AtdataWarning, match="not used"):
        assert Dataset[Item](written.urls).get("00000001").text == "t1"


def test_the_cache_stays_bounded(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scancache, "_MAX_ENTRIES", 8)
    for i in range(12):
        path = tmp_path / f"s{i}.tar"
        _shard(path, 1)
        scancache.save(
            open_source(str(path)), str(path), None, scan_offsets(open_source(str(path)))
        )
    assert 6 <= len(list((home / "offsets").glob("*.idx"))) <= 8
