"""Member-layout shards over HTTP (loopback): typed iteration fetches runs of groups with one
range request per run, not one or two per sample, and gives what a local read gives; an offset
index that splits a group is caught there too."""

import shutil
import warnings
from pathlib import Path

import pytest

from atdata import AtdataWarning, Dataset, ShardError, member, packable, write_samples
from atdata.shards.offsets import OFFSETS_SUFFIX, OffsetIndex


@packable
class Item:
    label: int = member("cls")
    text: str = member("txt")
    blob: bytes = member("bin")


def _items(n: int) -> list[Item]:
    return [Item(i, f"item {i}", bytes([i % 256]) * (100 + i)) for i in range(n)]


def test_ordered_remote_reads_fetch_runs(http_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    written = write_samples(_items(40), str(tmp_path / "r-%06d.tar"), maxcount=20)
    for url in written.urls:
        for suffix in ("", OFFSETS_SUFFIX):
            shutil.copy(url + suffix, http_server.root / (Path(url).name + suffix))
    urls = [http_server.url_for(Path(u).name) for u in written.urls]
    before = len(http_server.requests)
    got = [(s.label, s.text, s.blob) for s in Dataset[Item](urls).ordered()]
    assert got == [(i.label, i.text, i.blob) for i in _items(40)]
    requests = len(http_server.requests) - before
    assert requests <= 12, requests  # sidecars, runs, and the final group of each shard
    batches = list(Dataset[Item](urls).shuffled(seed=1, batch_size=8))
    assert sorted(x for b in batches for x in b.label) == list(range(40))


def test_a_group_split_by_the_index_is_caught_remotely(http_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    written = write_samples(_items(6), str(tmp_path / "s.tar"))
    url = written.urls[0]
    good = OffsetIndex.from_bytes(Path(url + OFFSETS_SUFFIX).read_bytes(), "test")
    assert good.starts is not None and good.ends is not None
    starts, ends = good.starts.copy(), good.ends.copy()
    cut = int(good.header_offsets[1]) + 512 + 512  # sample 1 loses its later members to 2
    ends[1], starts[2] = cut, cut
    bad = OffsetIndex(
        good.keys, good.header_offsets, good.sizes, good.shard_size, None, starts, ends
    )
    shutil.copy(url, http_server.root / "s.tar")
    (http_server.root / ("s.tar" + OFFSETS_SUFFIX)).write_bytes(bad.to_bytes())
    ds = Dataset[Item](http_server.url_for("s.tar"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)
        with pytest.raises(ShardError):  # never a sample with members silently missing
            list(ds.ordered())
        assert ds[1] == _items(6)[1]  # random access drops the index for a scan
