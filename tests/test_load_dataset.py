"""``load_dataset``: every form of path it accepts, split detection, and what it returns.

Local files, directories (split subdirectories and split-named files), globs, brace patterns,
``data_files=``, http URLs served by a real loopback HTTP server, and ``@local/name[@version]``
through a real SQLite index in a temporary ``ATDATA_HOME``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import atdata
from atdata import Dataset, DatasetDict, DictSample, Index, load_dataset
from atdata.dataset_refs import detect_split
from atdata.errors import AtdataError, NotFoundError, SourceError
from atdata.index.providers.sqlite import SQLiteProvider
from atdata.shards.offsets import OFFSETS_SUFFIX
from atdata.stores.disk import LocalDiskStore
from http_server import FileServer


@atdata.packable
class Row:
    i: int
    tag: str


def _rows(start: int, n: int, tag: str = "") -> list[Row]:
    return [Row(i, tag or f"r{i}") for i in range(start, start + n)]


def _write(
    directory: Path, stem: str, start: int = 0, n: int = 4, *, maxcount: int = 10
) -> list[Path]:
    """Shards ``directory/stem-000000.tar``... holding rows ``start .. start+n-1``."""
    directory.mkdir(parents=True, exist_ok=True)
    infos = atdata.write_samples(
        _rows(start, n), str(directory / f"{stem}-%06d.tar"), maxcount=maxcount
    ).shard_infos
    return [Path(info.url) for info in infos]


def _write_as(path: Path, start: int = 0, n: int = 3) -> Path:
    """One shard stored under exactly ``path`` (its offset sidecar moved beside it)."""
    staging = path.parent / f".staging-{path.name}"
    (written,) = _write(staging, "s", start, n)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(written), path)
    shutil.move(str(written) + OFFSETS_SUFFIX, str(path) + OFFSETS_SUFFIX)
    shutil.rmtree(staging)
    return path


def _values(samples: Iterable[Any]) -> list[int]:
    return sorted(s["i"] if isinstance(s, DictSample) else s.i for s in samples)


def _shard_names(ds: Dataset[Any]) -> list[str]:
    return sorted(os.path.basename(u.rstrip("/")) for u in ds.urls)


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing from the environment: no index URL, no shard cache, a private ATDATA_HOME."""
    monkeypatch.delenv("ATDATA_INDEX_URL", raising=False)
    monkeypatch.delenv("ATDATA_CACHE_DIR", raising=False)
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))


# ------------------------------------------------------------------------------ split names
@pytest.mark.parametrize(
    ("path", "split"),
    [
        ("mnist-train-000000.tar", "train"),
        ("mnist_training_000000.tar", "train"),
        ("mnist.train.tar", "train"),
        ("train/mnist-000000.tar", "train"),
        ("training/x.tar", "train"),
        ("x-test-000001.tar", "test"),
        ("x_testing.tar", "test"),
        ("x.test.tar", "test"),
        ("testing/x.tar", "test"),
        ("x-validation-000000.tar", "validation"),
        ("x_valid.tar", "validation"),
        ("x.val.tar", "validation"),
        ("x-dev-000003.tar", "validation"),
        ("val/x.tar", "validation"),
        ("valid/x.tar", "validation"),
        ("dev/x.tar", "validation"),
        ("validation/x.tar", "validation"),
        ("data\\dev\\x.tar", "validation"),  # a Windows separator delimits too
        ("MNIST-TRAIN-000000.tar", "train"),
        ("train/x-test-000000.tar", "test"),  # the file name wins over its directories
    ],
)
def test_detect_split_knows_every_alias_and_delimiter(path: str, split: str) -> None:
    assert detect_split(path) == split


@pytest.mark.parametrize(
    "path",
    [
        "contest-000000.tar",
        "trainer.tar",
        "retrain-000000.tar",
        "x-trains.tar",
        "attest.tar",
        "x-testset-000000.tar",
        "latest.tar",
        "devices-000000.tar",
        "x_develop.tar",
        "interval.tar",
        "validator.tar",
        "x-evaluation.tar",
        "x-invalid.tar",
        "contest/trainer-000000.tar",
        "x-000000.tar",
    ],
)
def test_words_that_merely_contain_a_split_name_are_no_split(path: str) -> None:
    assert detect_split(path) is None


# ------------------------------------------------------------------------------ local files
def test_a_local_file_is_the_train_split(tmp_path: Path) -> None:
    (shard,) = _write(tmp_path / "data", "rows", 0, 5)
    splits = load_dataset(str(shard))
    assert isinstance(splits, DatasetDict) and list(splits) == ["train"]
    ds = load_dataset(shard, split="train")  # a PathLike works too
    assert isinstance(ds, Dataset)
    samples = list(ds)
    assert all(isinstance(s, DictSample) for s in samples)  # no sample_type: DictSample
    assert _values(samples) == [0, 1, 2, 3, 4]
    assert [s["tag"] for s in samples] == ["r0", "r1", "r2", "r3", "r4"]
    typed = load_dataset(str(shard), Row, split="train")
    assert typed.sample_type is Row and [r.i for r in typed] == [0, 1, 2, 3, 4]
    assert all(isinstance(r, Row) for r in typed)
    # the ".tar" may be left off
    assert load_dataset(str(shard)[: -len(".tar")], split="train").urls == [str(shard)]


def test_directories_above_the_pattern_name_no_split(tmp_path: Path) -> None:
    """``/.../test/x.tar``, ``/.../validation/x-*.tar``: the fixed directories a path or pattern
    starts in are where the data lives, not its split (pytest's own ``test_...`` temp dirs too)."""
    (one,) = _write(tmp_path / "test", "x", 0, 2)
    assert list(load_dataset(str(one))) == ["train"]
    _write(tmp_path / "validation" / "dev", "x", 0, 4, maxcount=2)
    for pattern in ("x-*.tar", "x-{000000..000001}.tar", "x-000001.tar"):
        found = load_dataset(str(tmp_path / "validation" / "dev" / pattern))
        assert list(found) == ["train"], pattern


def test_a_directory_with_split_subdirectories(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    _write(root / "train", "x", 0, 6, maxcount=3)
    _write(root / "test", "x", 100, 2)
    _write(root / "val", "x", 200, 3)
    (root / "README.md").write_text("not a shard")
    splits = load_dataset(str(root))
    assert isinstance(splits, DatasetDict)
    assert sorted(splits) == ["test", "train", "validation"]
    assert _values(splits["train"]) == list(range(6)) and len(splits["train"].shards) == 2
    assert _values(splits["test"]) == [100, 101]
    assert _values(splits["validation"]) == [200, 201, 202]
    assert not any(u.endswith(OFFSETS_SUFFIX) for ds in splits.values() for u in ds.urls)
    for alias in ("validation", "valid", "val", "dev"):
        ds = load_dataset(str(root), split=alias)
        assert isinstance(ds, Dataset) and _values(ds) == [200, 201, 202]
    assert _values(load_dataset(str(root), split="testing")) == [100, 101]
    assert _values(load_dataset(str(root), split="training")) == list(range(6))
    assert "DatasetDict(" in repr(splits) and "train: 2 shard(s)" in repr(splits)


@pytest.mark.parametrize(
    ("subdir", "split"),
    [
        ("train", "train"),
        ("training", "train"),
        ("test", "test"),
        ("testing", "test"),
        ("validation", "validation"),
        ("valid", "validation"),
        ("val", "validation"),
        ("dev", "validation"),
    ],
)
def test_every_alias_names_a_split_subdirectory(tmp_path: Path, subdir: str, split: str) -> None:
    root = tmp_path / "d"
    _write(root / subdir, "shard", 0, 2)
    _write(root / "contest", "shard", 50, 1)  # holds no split word: the default split
    splits = load_dataset(str(root))
    expected = {split: [0, 1], "train": [50]} if split != "train" else {"train": [0, 1, 50]}
    assert {k: _values(v) for k, v in splits.items()} == expected


def test_a_directory_with_split_named_files(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    named = {
        "x-train-000000.tar": ("train", 0),
        "x-train-000001.tar": ("train", 10),
        "x_training.tar": ("train", 20),
        "x.test.tar": ("test", 30),
        "x-testing-000000.tar": ("test", 40),
        "x_validation.tar": ("validation", 50),
        "x-valid.tar": ("validation", 60),
        "x.val.tar": ("validation", 70),
        "x.dev.tar": ("validation", 80),
        "contest-000000.tar": ("train", 90),  # no split word: the default
        "trainer_devices.tar": ("train", 100),
    }
    for name, (_, start) in named.items():
        _write_as(root / name, start, 2)
    splits = load_dataset(str(root))
    assert sorted(splits) == ["test", "train", "validation"]
    for split in ("train", "test", "validation"):
        want = sorted(name for name, (s, _) in named.items() if s == split)
        assert _shard_names(splits[split]) == want, split
        starts = [start for s, start in named.values() if s == split]
        assert _values(splits[split]) == sorted(v for st in starts for v in (st, st + 1))


def test_a_glob(tmp_path: Path) -> None:
    _write(tmp_path / "g", "x", 0, 9, maxcount=3)
    _write(tmp_path / "g", "other", 100, 2)
    ds = load_dataset(str(tmp_path / "g" / "x-*.tar"), split="train")
    assert _shard_names(ds) == ["x-000000.tar", "x-000001.tar", "x-000002.tar"]
    assert _values(ds) == list(range(9))
    # a glob without the extension matches the offset sidecars too: they are no shards
    bare = load_dataset(str(tmp_path / "g" / "x-*"), split="train")
    assert bare.urls == ds.urls and _values(bare) == list(range(9))
    spread = load_dataset(str(tmp_path / "g" / "*-00000[01].tar"), split="train")
    assert _values(spread) == [0, 1, 2, 3, 4, 5, 100, 101]


def test_a_glob_over_split_directories(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _write(root / "train", "x", 0, 2)
    _write(root / "valid", "x", 10, 2)
    splits = load_dataset(str(root / "*" / "x-*.tar"))
    assert {k: _values(v) for k, v in splits.items()} == {"train": [0, 1], "validation": [10, 11]}


def test_a_brace_pattern(tmp_path: Path) -> None:
    _write(tmp_path / "b", "x", 0, 12, maxcount=3)
    ds = load_dataset(str(tmp_path / "b" / "x-{000001..000002}.tar"), split="train")
    assert _shard_names(ds) == ["x-000001.tar", "x-000002.tar"]
    assert _values(ds) == [3, 4, 5, 6, 7, 8]
    _write_as(tmp_path / "b" / "y-train.tar", 100)
    _write_as(tmp_path / "b" / "y-dev.tar", 200)
    splits = load_dataset(str(tmp_path / "b" / "y-{train,dev}.tar"))
    assert {k: _values(v) for k, v in splits.items()} == {
        "train": [100, 101, 102],
        "validation": [200, 201, 202],
    }


def test_data_files_as_a_string_a_list_and_a_mapping(tmp_path: Path) -> None:
    root = tmp_path / "df"
    _write(root, "a", 0, 4, maxcount=2)
    _write(root, "b", 100, 2)
    _write_as(root / "held-out.tar", 500, 2)

    one = load_dataset(str(root), data_files="a-*.tar")  # relative to the path
    assert list(one) == ["train"] and _values(one["train"]) == [0, 1, 2, 3]
    listed = load_dataset(str(root), data_files=["a-000001.tar", "b-{000000..000000}.tar"])
    assert list(listed) == ["train"] and _values(listed["train"]) == [2, 3, 100, 101]
    mapped = load_dataset(
        str(root),
        data_files={"train": ["a-*.tar", "b-000000.tar"], "eval": str(root / "held-out.tar")},
    )
    assert sorted(mapped) == ["eval", "train"]
    assert _values(mapped["train"]) == [0, 1, 2, 3, 100, 101]
    assert _values(mapped["eval"]) == [500, 501]  # an absolute path stays as it is
    assert isinstance(
        load_dataset(str(root), data_files={"eval": "held-out.tar"}, split="eval"), Dataset
    )
    # the sidecars a bare glob matches are dropped here too
    bare = load_dataset(str(root), data_files="a-*", split="train")
    assert [os.path.basename(u) for u in bare.urls] == ["a-000000.tar", "a-000001.tar"]
    typed = load_dataset(str(root), Row, data_files="b-*.tar", split="train")
    assert [r.tag for r in typed] == ["r100", "r101"]


# ------------------------------------------------------------------------------------- http
@pytest.mark.services
def test_http_urls_from_a_real_server(http_server: FileServer) -> None:
    _write(http_server.root / "test", "x", 0, 6, maxcount=2)  # 'test' only names the folder
    url = http_server.url_for("test/x-000001.tar")
    ds = load_dataset(url, split="train")
    assert isinstance(ds, Dataset) and ds.urls == [url]
    samples = list(ds)
    assert all(isinstance(s, DictSample) for s in samples) and _values(samples) == [2, 3]
    assert http_server.count("GET", "/test/x-000001.tar") >= 1

    brace = http_server.url_for("test/x-") + "{000000..000002}.tar"
    splits = load_dataset(brace)
    assert list(splits) == ["train"] and len(splits["train"].shards) == 3
    assert _values(load_dataset(brace, Row, split="train")) == list(range(6))
    for i in range(3):
        assert http_server.count("GET", f"/test/x-{i:06d}.tar") >= 1


@pytest.mark.services
def test_split_named_shards_over_http(http_server: FileServer) -> None:
    _write_as(http_server.root / "set-train-000000.tar", 0, 2)
    _write_as(http_server.root / "set-train-000001.tar", 2, 2)
    _write_as(http_server.root / "set-valid-000000.tar", 10, 2)
    pattern = http_server.url_for("set-") + "{train,valid}-{000000..000001}.tar"
    with pytest.raises(AtdataError):  # set-valid-000001.tar is not there
        load_dataset(pattern, split="validation").head(10)
    splits = load_dataset(
        http_server.url_for("set-") + "{train-000000,train-000001,valid-000000}.tar"
    )
    assert {k: _values(v) for k, v in splits.items()} == {
        "train": [0, 1, 2, 3],
        "validation": [10, 11],
    }


@pytest.mark.services
def test_globs_over_http_are_refused_with_what_was_tried(http_server: FileServer) -> None:
    with pytest.raises(SourceError) as info:
        load_dataset(http_server.url_for("x-") + "*.tar")
    assert "tried" in str(info.value) and "globs are not supported" in str(info.value)


@pytest.mark.services
def test_a_cached_second_epoch_over_http_makes_no_requests(
    http_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(http_server.root, "x", 0, 6, maxcount=2)
    monkeypatch.setenv("ATDATA_CACHE_DIR", str(tmp_path / "cache"))
    pattern = http_server.url_for("x-") + "{000000..000002}.tar"
    ds = load_dataset(pattern, Row, split="train")
    assert [r.i for r in ds] == list(range(6)) and len(ds) == 6  # epoch 1 fills the cache
    seen = len(http_server.requests)
    assert seen > 0
    assert [r.i for r in ds] == list(range(6))  # epoch 2
    assert sorted(r.i for r in ds.shuffled(seed=5, epoch=1)) == list(range(6))
    assert ds[4].i == 4 and ds.get(ds.shards.offsets(1).keys[1]).i == 3
    fresh = load_dataset(pattern, split="train")  # another load of the same URLs
    assert _values(fresh) == list(range(6)) and len(fresh) == 6
    assert http_server.requests[seen:] == []


# -------------------------------------------------------------------------------- the index
def test_index_names_through_the_default_index(tmp_path: Path) -> None:
    with Index() as index:  # SQLite in $ATDATA_HOME (set by the autouse fixture)
        index.write(_rows(0, 5), name="rows", maxcount=2)
        index.write(_rows(100, 3), name="rows")
    assert (tmp_path / "home" / "index.db").exists()

    splits = load_dataset("@local/rows")
    assert isinstance(splits, DatasetDict) and list(splits) == ["train"]
    latest = load_dataset("@local/rows", split="train")
    assert isinstance(latest, Dataset)
    rebuilt = latest.sample_type
    assert rebuilt is not Row and rebuilt is not DictSample and rebuilt.__name__ == "Row"
    samples = list(latest)
    assert all(type(s) is rebuilt for s in samples)
    assert [(s.i, s.tag) for s in samples] == [(100, "r100"), (101, "r101"), (102, "r102")]

    first = load_dataset("@local/rows@1", split="train")
    assert [s.i for s in first] == [0, 1, 2, 3, 4] and len(first.shards) == 3
    assert [s.i for s in load_dataset("@local/rows@latest", split="train")] == [100, 101, 102]
    typed = load_dataset("@local/rows@1", Row, split="train")
    assert typed.sample_type is Row and all(isinstance(r, Row) for r in typed)
    assert [list(b.i) for b in typed.ordered(batch_size=2)] == [[0, 1], [2, 3], [4]]

    with pytest.raises(NotFoundError, match="rows@9"):
        load_dataset("@local/rows@9")
    with pytest.raises(NotFoundError, match="nothing"):
        load_dataset("@local/nothing")


def test_index_names_through_an_index_passed_in(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    with Index(SQLiteProvider(other / "index.db"), LocalDiskStore(other / "data")) as index:
        index.write(_rows(7, 2), name="team/pairs")
        entry = index.get("team/pairs")
        assert all(u.startswith(str(other / "data")) for u in entry.urls)
        ds = load_dataset("@local/team/pairs", index=index, split="train")
        assert [s.i for s in ds] == [7, 8] and ds.sample_type.__name__ == "Row"
        assert [s.i for s in load_dataset("@local/team/pairs@1", index=index)["train"]] == [7, 8]
    # the default index (in ATDATA_HOME) does not hold it
    with pytest.raises(NotFoundError):
        load_dataset("@local/team/pairs")


def test_index_datasets_of_dict_samples_load_as_dict_samples(tmp_path: Path) -> None:
    with Index() as index:
        index.write([{"a": 1}, {"a": 2}], name="plain")
        ds = load_dataset("@local/plain", index=index, split="train")
        assert ds.sample_type is DictSample and [s["a"] for s in ds] == [1, 2]


# ----------------------------------------------------------------------------- split and errors
def test_split_returns_a_dataset_and_an_unknown_split_lists_the_available_ones(
    tmp_path: Path,
) -> None:
    root = tmp_path / "s"
    _write(root / "train", "x")
    _write(root / "test", "x")
    assert isinstance(load_dataset(str(root)), DatasetDict)
    assert isinstance(load_dataset(str(root), split="test"), Dataset)
    with pytest.raises(NotFoundError) as info:
        load_dataset(str(root), split="validation")
    assert isinstance(info.value, AtdataError)
    assert "validation" in str(info.value) and "['test', 'train']" in str(info.value)
    with pytest.raises(NotFoundError, match=r"available: \['train'\]"):
        with Index() as index:
            index.write(_rows(0, 1), name="one")
            load_dataset("@local/one", index=index, split="test")


@pytest.mark.parametrize(
    "relative",
    ["missing.tar", "missing", "missing-*.tar", "missing-{000000..000002}.tar", "nodir/"],
)
def test_an_unresolvable_path_says_what_was_tried(tmp_path: Path, relative: str) -> None:
    (tmp_path / "nodir").mkdir()
    (tmp_path / "nodir" / "notes.txt").write_text("no shards here")
    path = str(tmp_path / relative)
    with pytest.raises(AtdataError) as info:
        load_dataset(path)
    text = str(info.value)
    assert isinstance(info.value, SourceError)
    assert "tried" in text and path.rstrip("/") in text
    if relative == "missing":
        assert f"{path}.tar" in text  # the extension was tried too
    if relative == "nodir/":
        assert "directory" in text
