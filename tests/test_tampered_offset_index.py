"""A tampered or stale ``.idx`` sidecar never decides which sample a key or index returns.

Every read path checks the member headers the sidecar points at (name ``key.msgpack``, size,
checksum): ``ds[i]`` and ``get(key)`` locally and over HTTP range reads, iteration and batches.
A sidecar that disagrees with its shard, or with the sha256 recorded for it in the index, is
not used (an ``AtdataWarning`` says so and the shard is scanned), and ``atdata verify`` reports it.
"""

import hashlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import atdata
from atdata import AtdataWarning, Dataset, DictSample, NDArray, write_samples
from atdata.cli.app import app
from atdata.index import Index
from atdata.shards.access import read_body
from atdata.shards.offsets import OffsetIndex, SidecarMismatch
from atdata.sources import open_source
from http_server import FileServer

N = 40


@atdata.packable
class Item:
    idx: int
    x: NDArray[np.float32]


def _items(n: int = N) -> Iterator[Item]:
    for i in range(n):
        yield Item(i, np.full(3 + i % 5, i, dtype=np.float32))


@pytest.fixture
def shard(tmp_path: Path) -> Path:
    (info,) = write_samples(_items(), str(tmp_path / "s-%06d.tar"), key_field="idx").shard_infos
    return Path(info.url)


def _load(path: Path) -> dict[str, Any]:
    raw: dict[str, Any] = msgpack.unpackb(Path(str(path) + ".idx").read_bytes())
    return raw


def _store(path: Path, raw: dict[str, Any]) -> None:
    Path(str(path) + ".idx").write_bytes(msgpack.packb(raw, use_bin_type=True))


def _swap_locations(path: Path, a: int, b: int) -> None:
    """Swap where the sidecar says samples ``a`` and ``b`` lie (the keys stay in place)."""
    raw = _load(path)
    offs = np.frombuffer(raw["header_offsets"], "<i8").copy()
    sizes = np.frombuffer(raw["sizes"], "<i8").copy()
    offs[[a, b]] = offs[[b, a]]
    sizes[[a, b]] = sizes[[b, a]]
    raw["header_offsets"], raw["sizes"] = offs.tobytes(), sizes.tobytes()
    _store(path, raw)


def _quiet(fn: Any) -> tuple[Any, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, list(caught)


def _sidecar_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [
        str(w.message) for w in caught if w.category is AtdataWarning and ".idx" in str(w.message)
    ]


def test_swapped_offsets_never_return_another_key_s_sample(shard: Path) -> None:
    _swap_locations(shard, 3, 17)
    ds = Dataset[Item](str(shard))
    got, caught = _quiet(lambda: (ds[3].idx, ds.get("17").idx, ds[17].idx, ds.get("3").idx))
    assert got == (3, 17, 17, 3)
    assert _sidecar_warnings(caught), "the bad sidecar is reported"
    assert len(ds) == N
    assert [s.idx for s in ds.ordered()] == list(range(N))

    # members out of order in the sidecar: the batched path does not use it at all
    fresh = Dataset[Item](str(shard))
    assert [int(i) for b in fresh.ordered(batch_size=8) for i in b.idx] == list(range(N))


def test_swapped_keys_are_caught_by_the_member_names(shard: Path) -> None:
    raw = _load(shard)
    raw["keys"][5], raw["keys"][6] = raw["keys"][6], raw["keys"][5]
    _store(shard, raw)
    ds = Dataset[Item](str(shard))
    (by_key, by_index), caught = _quiet(lambda: (ds.get("5").idx, ds[5].idx))
    assert (by_key, by_index) == (5, 5)
    assert _sidecar_warnings(caught)
    assert [s.idx for s in Dataset[Item](str(shard)).ordered()] == list(range(N))
    keys = [s["idx"] for s in Dataset(str(shard)).ordered()]
    assert keys == list(range(N))


def test_an_offset_inside_another_body_is_not_read_as_a_sample(shard: Path) -> None:
    index = OffsetIndex.from_bytes(Path(str(shard) + ".idx").read_bytes(), "test")
    raw = _load(shard)
    offs = np.frombuffer(raw["header_offsets"], "<i8").copy()
    offs[9] = offs[8] + 512  # the body of member 8, not a header
    raw["header_offsets"] = offs.tobytes()
    _store(shard, raw)
    tampered = OffsetIndex.from_bytes(Path(str(shard) + ".idx").read_bytes(), "test")
    with pytest.raises(SidecarMismatch):
        read_body(open_source(str(shard)), tampered, 9)
    assert bytes(read_body(open_source(str(shard)), index, 9))  # the true index reads fine
    ds = Dataset[Item](str(shard))
    got, caught = _quiet(lambda: ds[9])
    assert got.idx == 9 and _sidecar_warnings(caught)


def test_a_sidecar_leaving_samples_out_is_not_used(shard: Path) -> None:
    raw = _load(shard)
    keep = N - 4
    raw["keys"] = raw["keys"][:keep]
    raw["header_offsets"] = raw["header_offsets"][: 8 * keep]
    raw["sizes"] = raw["sizes"][: 8 * keep]
    raw["count"] = keep
    _store(shard, raw)
    ds = Dataset[Item](str(shard))
    n, caught = _quiet(lambda: len(ds))
    assert n == N and _sidecar_warnings(caught)
    assert [s.idx for s in ds.ordered()] == list(range(N))
    assert ds[-1].idx == N - 1


def test_swapped_offsets_over_http_range_reads(shard: Path) -> None:
    _swap_locations(shard, 2, 30)
    with FileServer(shard.parent) as server:
        ds = Dataset[Item](server.url_for(shard.name))
        got, caught = _quiet(lambda: (ds[2].idx, ds.get("30").idx))
    assert got == (2, 30)
    assert _sidecar_warnings(caught)


def test_the_index_records_each_sidecar_s_sha256(home: Path) -> None:
    with Index() as index:
        entry = index.write(_items(), name="items", maxcount=16)
        for shard in entry.shards:
            assert shard.sidecar_checksum is not None
            data = Path(shard.url + ".idx").read_bytes()
            assert shard.sidecar_checksum.digest == hashlib.sha256(data).hexdigest()
        again = index.get("items@1")
        assert again.shards == entry.shards  # stored and read back with the entry


def test_a_sidecar_differing_from_its_recorded_digest_is_not_used(home: Path) -> None:
    with Index() as index:
        entry = index.write(_items(), name="items", maxcount=16)
        url = entry.urls[1]
        raw = _load(Path(url))
        raw["note"] = "edited"  # harmless to the layout, but not the sidecar that was written
        _store(Path(url), raw)
        ds = index.load("items@1", Item)
        (n, item), caught = _quiet(lambda: (len(ds), ds[20]))
    assert (n, item.idx) == (N, 20)
    (message,) = _sidecar_warnings(caught)
    assert url in message and "sha256" in message


def test_a_sidecar_describing_other_bytes_is_not_used_for_a_remote_shard(
    home: Path, tmp_path: Path
) -> None:
    """Remote sidecars of old entries (no digest recorded) are still checked against the
    shard's recorded size and sha256, which the sidecar repeats."""
    with Index() as index:
        entry = index.write(_items(), name="items", maxcount=100)
        (shard,) = entry.shards
        path = Path(shard.url)
        raw = _load(path)
        raw["sha256"] = "0" * 64
        _store(path, raw)
        with FileServer(path.parent) as server:
            remote = index.insert([server.url_for(path.name)], name="remote", copy=False)
            assert (
                remote.shards[0].sidecar_checksum is None
            )  # a sidecar for other bytes: not recorded
            ds = index.load(remote, Item)
            (n, item), caught = _quiet(lambda: (len(ds), ds[7]))
    assert (n, item.idx) == (N, 7)
    assert _sidecar_warnings(caught)


runner = CliRunner()


def test_verify_reports_a_tampered_sidecar_of_an_index_dataset(home: Path) -> None:
    with Index() as index:
        entry = index.write(_items(), name="items", maxcount=16)
    ok = runner.invoke(app, ["verify", "items", "--json"])
    assert ok.exit_code == 0, ok.output
    _swap_locations(Path(entry.urls[0]), 1, 2)
    bad = runner.invoke(app, ["verify", "items", "--json"])
    assert bad.exit_code == 1, bad.output
    (problem,) = json.loads(bad.stdout)["problems"]
    assert problem["url"] == entry.urls[0] and ".idx" in problem["problem"]


def test_verify_reports_a_tampered_sidecar_of_shards_named_by_path(shard: Path) -> None:
    ok = runner.invoke(app, ["verify", str(shard), "--json"])
    assert ok.exit_code == 0, ok.output
    raw = _load(shard)
    raw["keys"][0], raw["keys"][1] = raw["keys"][1], raw["keys"][0]
    _store(shard, raw)
    bad = runner.invoke(app, ["verify", str(shard), "--json"])
    assert bad.exit_code == 1, bad.output
    (problem,) = json.loads(bad.stdout)["problems"]
    assert "sidecar" in problem["problem"] and "names sample 0" in problem["problem"]


def test_dict_samples_read_through_a_tampered_sidecar(shard: Path) -> None:
    _swap_locations(shard, 0, 39)
    ds = Dataset(str(shard))
    got, caught = _quiet(lambda: (ds[0]["idx"], ds.get("39")["idx"]))
    assert got == (0, 39) and _sidecar_warnings(caught)
    assert isinstance(ds[1], DictSample)


@atdata.packable
class Named:
    name: str
    x: NDArray[np.float32]


@pytest.mark.parametrize(
    "names",
    [
        [f"{i:04d}" for i in range(30)],
        ["a", "bb", "ccc", "d-1", "x" * 92, "k:9", "z~=,+@"],
    ],
)
def test_the_batched_path_checks_names_of_any_length_without_warnings(
    tmp_path: Path, names: list[str]
) -> None:
    samples = [Named(n, np.full(2, i, dtype=np.float32)) for i, n in enumerate(names)]
    (info,) = write_samples(samples, str(tmp_path / "n-%06d.tar"), key_field="name").shard_infos
    index = OffsetIndex.from_bytes(Path(info.url + ".idx").read_bytes(), "test")
    assert index.bulk_names() is not None  # the fast path is taken
    ds = Dataset[Named](info.url)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AtdataWarning)
        got = [n for b in ds.ordered(batch_size=4) for n in b.name]
        assert got == names
        assert [ds.get(n).name for n in names] == names


@given(
    keys=st.lists(
        st.text(st.characters(codec="utf-8", exclude_characters="./\x00"), min_size=1, max_size=40),
        max_size=20,
    )
)
def test_the_name_table_is_each_key_with_its_suffix(keys: list[str]) -> None:
    n = len(keys)
    sizes = np.zeros(n, dtype=np.int64)
    index = OffsetIndex(keys, np.arange(n, dtype=np.int64) * 512, sizes, shard_size=512 * n)
    names = index.bulk_names()
    fits = [len(k.encode()) + 8 <= 100 for k in keys]
    if not all(fits):
        assert names is None
        return
    assert names is not None
    assert [bytes(row[:100]).rstrip(b"\0") for row in names] == [
        k.encode() + b".msgpack" for k in keys
    ]
