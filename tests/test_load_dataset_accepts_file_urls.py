"""``load_dataset`` accepts ``file://`` URLs wherever it accepts a local path, as ``Dataset`` does."""

import os
from pathlib import Path
from urllib.parse import quote

import pytest

import atdata
from atdata import Dataset, load_dataset
from atdata.errors import SourceError


@atdata.packable
class Item:
    i: int


@pytest.fixture(autouse=True)
def _private_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ATDATA_INDEX_URL", raising=False)
    monkeypatch.delenv("ATDATA_CACHE_DIR", raising=False)
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))


def _shards(directory: Path, stem: str, n: int = 4, per: int = 2) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    infos = atdata.write_samples(
        [Item(i) for i in range(n)], str(directory / f"{stem}-%06d.tar"), maxcount=per
    ).shard_infos
    return [info.url for info in infos]


def _url(path: str | Path, host: str = "") -> str:
    return f"file://{host}{quote(os.fspath(path))}"


@pytest.mark.parametrize("host", ["", "localhost"])
def test_a_file_url_to_one_shard_loads_like_its_path(tmp_path: Path, host: str) -> None:
    (shard, _) = _shards(tmp_path / "a dir", "items")  # a space: percent-escaped in the URL
    via_url = load_dataset(_url(shard, host), Item, split="train")
    assert [s.i for s in via_url] == [s.i for s in Dataset(_url(shard, host), Item)] == [0, 1]
    assert [s.i for s in via_url] == [s.i for s in load_dataset(shard, Item, split="train")]


def test_file_urls_to_directories_globs_and_splits(tmp_path: Path) -> None:
    _shards(tmp_path / "corpus" / "train", "x", 4)
    _shards(tmp_path / "corpus" / "test", "x", 2)
    splits = load_dataset(_url(tmp_path / "corpus"), Item)
    assert sorted(splits) == ["test", "train"]
    assert sorted(s.i for s in splits["train"]) == [0, 1, 2, 3]
    globbed = load_dataset(_url(tmp_path / "corpus" / "train") + "/x-*.tar", Item, split="train")
    assert len(globbed.shards) == 2
    files = load_dataset(
        _url(tmp_path), Item, data_files={"test": _url(tmp_path / "corpus/test/x-000000.tar")}
    )
    assert [s.i for s in files["test"]] == [0, 1]


def test_a_file_url_on_another_host_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"elsewhere\.example"):
        load_dataset(f"file://elsewhere.example{tmp_path}/x.tar")
