"""A manifest that does not describe its shard exactly (stale, edited, malformed, pointing
outside the shard) is detected, named in a warning and ignored: the query reads the shard and
answers correctly."""

import os
from pathlib import Path

import msgpack
import numpy as np
import pytest

import atdata
from atdata.errors import AtdataWarning
from atdata.index import Index, SQLiteProvider
from atdata.manifest import Manifest
from atdata.stores import LocalDiskStore
from query_helpers import CountingOpener, Row, make_rows


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    atdata.write_samples(make_rows(60, 1), str(tmp_path / "h-%06d.tar"), maxcount=20)
    return tmp_path


def _query(folder: Path, opener: CountingOpener | None = None) -> atdata.Dataset[Row]:
    return atdata.Dataset[Row](str(folder / "h-{000000..000002}.tar"), source_factory=opener)


def _edit(path: Path, change: "callable[[dict], None]") -> None:  # type: ignore[valid-type]
    """Change the manifest as one map (header and column block together), write it back."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(path.read_bytes())
    header, block = list(unpacker)
    data = {**header, **block}
    change(data)
    header = {k: v for k, v in data.items() if k not in ("columns", "positions")}
    block = {k: data[k] for k in ("columns", "positions")}
    path.write_bytes(msgpack.packb(header) + msgpack.packb(block))


def test_a_stale_manifest_is_detected_by_checksum(shards: Path) -> None:
    old = (shards / "h-000001.tar.manifest").read_bytes()
    # shard 1 is rewritten (new content, new .idx) but keeps the old manifest
    atdata.write_samples(make_rows(20, 9), str(shards / "h-000001.tar"), manifests=False)
    (shards / "h-000001.tar.manifest").write_bytes(old)
    ds = _query(shards)
    want = [s.id for s in ds if s.score > 0.7]
    with pytest.warns(AtdataWarning, match=r"h-000001\.tar\.manifest is not used: .*stale"):
        got = [s.id for s in ds.where("score > 0.7")]
    assert got == want


def test_a_missing_manifest_is_read_around(shards: Path) -> None:
    os.remove(shards / "h-000002.tar.manifest")
    opener = CountingOpener()
    ds = _query(shards, opener)
    want = [s.id for s in _query(shards) if s.label == 4]
    assert [s.id for s in ds.where("label == 4")] == want
    assert "h-000002.tar" in opener.opened  # read whole: nothing says it cannot match


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(positions=[p + 10_000 for p in d["positions"]]),  # outside the shard
        lambda d: d.update(positions=[-1, *d["positions"][1:]]),
        lambda d: d.update(positions=list(reversed(d["positions"]))),
        lambda d: d["columns"].update(label=d["columns"]["label"][:-1]),
        lambda d: d["columns"].update(label=["x"] * len(d["columns"]["label"])),
        lambda d: d["fields"]["label"].update(min="a"),
        lambda d: d["fields"]["label"].update(nulls=-3),
        lambda d: d.update(shard={"sha256": "00" * 32, "size": 1, "count": 20}),
        lambda d: d.update(format="something else"),
    ],
)
def test_a_hostile_manifest_is_rejected(shards: Path, change: object) -> None:
    _edit(shards / "h-000000.tar.manifest", change)  # type: ignore[arg-type]
    ds = _query(shards)
    want = [s.id for s in ds if s.label >= 5]
    with pytest.warns(AtdataWarning, match=r"h-000000\.tar\.manifest is not used"):
        got = [s.id for s in ds.where("label >= 5")]
    assert got == want


def test_garbage_bytes_are_not_a_manifest(shards: Path) -> None:
    (shards / "h-000000.tar.manifest").write_bytes(os.urandom(300))
    ds = _query(shards)
    with pytest.warns(AtdataWarning, match="not used"):
        assert ds.count("label >= 0") == 60


def test_a_lying_manifest_cannot_add_samples(shards: Path) -> None:
    """A manifest that matches its shard's checksum but lies about the values can only hide
    samples, never add ones that do not match: every sample read is tested again."""

    def lie(d: dict) -> None:  # type: ignore[type-arg]
        d["columns"]["label"] = [5] * len(d["columns"]["label"])
        d["fields"]["label"].update(min=5, max=5, values=[5], counts=[20])

    _edit(shards / "h-000000.tar.manifest", lie)
    got = list(_query(shards).where("label == 5"))
    assert all(s.label == 5 for s in got)


def test_an_index_record_pins_the_manifest(tmp_path: Path) -> None:
    index = Index(SQLiteProvider(tmp_path / "i.db"), LocalDiskStore(tmp_path / "data"))
    entry = index.write(make_rows(40, 1), "team/p", maxcount=20)
    path = Path(entry.shards[0].url + ".manifest")
    manifest = Manifest.from_bytes(path.read_bytes(), "x")
    manifest.columns["label"] = [0] * manifest.count  # same shard checksum, other bytes
    path.write_bytes(manifest.to_bytes())
    ds = index.load("team/p", Row)
    with pytest.warns(AtdataWarning, match="differs from the one recorded"):
        got = [s.id for s in ds.where("label == 3")]
    assert got == [s.id for s in ds if s.label == 3]
    assert np.all(np.asarray([s.label for s in ds if s.id in got]) == 3)
