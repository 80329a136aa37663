"""A query pays for what it reads: a shard its manifest rules out is counted from the manifest
(its offset index is never loaded), and inside a read shard only the headers of the members read
are verified. Full reads still stop at a shard's first damaged member; a damaged member a query
reads is never returned."""

import warnings
from pathlib import Path

import pytest

import atdata
from atdata.errors import AtdataWarning, ShardError
from atdata.shards.offsets import OffsetIndex
from query_helpers import Row, make_rows


def _write(tmp_path: Path) -> tuple[str, list[list[Row]]]:
    rows = make_rows(200, 3, sort=True)
    atdata.write_samples(rows, str(tmp_path / "s-%06d.tar"), maxcount=20)
    return str(tmp_path / "s-{000000..000009}.tar"), [rows[i : i + 20] for i in range(0, 200, 20)]


def test_pruned_shards_offset_indexes_are_not_loaded(tmp_path: Path) -> None:
    pattern, shards = _write(tmp_path)
    hit = [i for i, rows in enumerate(shards) if any(r.label == 7 for r in rows)]
    assert 0 < len(hit) < len(shards)
    ds = atdata.Dataset[Row](pattern)
    q = ds.where("label == 7")
    got = [s.id for s in q]
    assert sorted(ds.shards._offsets) == hit  # the pruned shards were counted from manifests
    assert got == [s.id for s in atdata.Dataset[Row](pattern).filter(lambda s: s.label == 7)]
    # the counts taken from the manifests are the shards' real counts
    assert [ds.shards.count(i) for i in range(len(shards))] == [len(r) for r in shards]
    assert len(ds) == 200  # len() loads (and checks) every offset index
    assert sorted(ds.shards._offsets) == list(range(len(shards)))


def _damage(path: Path, member: int) -> int:
    idx = OffsetIndex.from_bytes(Path(str(path) + ".idx").read_bytes(), "test")
    header = int(idx.header_offsets[member])
    data = bytearray(path.read_bytes())
    data[header + 10] ^= 0x40  # the header's checksum no longer holds
    path.write_bytes(bytes(data))
    return header


def test_a_damaged_member_a_query_does_not_read_is_not_checked(tmp_path: Path) -> None:
    pattern, shards = _write(tmp_path)
    # a shard holding two labels: damage a member of the first, query the second
    i = next(k for k, rows in enumerate(shards) if rows[0].label != rows[-1].label)
    first, last = shards[i][0].label, shards[i][-1].label
    _damage(tmp_path / f"s-{i:06d}.tar", 0)
    ds = atdata.Dataset[Row](pattern, on_error="raise")
    want = [r.id for rows in shards for r in rows if r.label == last and r not in (shards[i][0],)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no damage is reported: the member is never read
        assert [s.id for s in ds.where(f"label == {last}")] == want
    # a full read (and a query that reads the damaged member) stops at it
    with pytest.raises(ShardError, match="does not match the offset index"):
        list(ds.filter(lambda s: s.label == last))
    with pytest.raises(ShardError, match="does not match the offset index"):
        list(ds.where(f"label == {first}"))


def test_a_damaged_member_a_query_reads_is_skipped_with_the_rest_of_its_shard(
    tmp_path: Path,
) -> None:
    pattern, shards = _write(tmp_path)
    i = next(k for k, rows in enumerate(shards) if rows[0].label == rows[5].label)
    label = shards[i][0].label
    header = _damage(tmp_path / f"s-{i:06d}.tar", 3)
    ds = atdata.Dataset[Row](pattern, on_error="warn")
    members = [r.id for r in shards[i] if r.label == label]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [s.id for s in ds.where(f"label == {label}")]
    # members 0..2 of the damaged shard are returned, nothing from member 3 on
    others = [r.id for k, rows in enumerate(shards) if k != i for r in rows if r.label == label]
    assert got == sorted([*members[:3], *others])
    bad = [w for w in caught if issubclass(w.category, AtdataWarning)]
    assert len(bad) == 1 and f"s-{i:06d}.tar" in str(bad[0].message)
    assert str(header) in str(bad[0].message)
    # the same as filter() gives on this shard
    assert got == [s.id for s in ds.filter(lambda s: s.label == label)]
