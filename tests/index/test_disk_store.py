"""The local disk store: layout, name rules, atomic writes, deletion and verification."""

import os
from pathlib import Path

import pytest
from index_helpers import make_samples

from atdata.errors import StoreError
from atdata.shards.writer import ShardWriter
from atdata.stores import LocalDiskStore, validate_dataset_name

W1 = "0123456789abcdef"
W2 = "fedcba9876543210"


def test_layout_is_root_name_version_write_id_basename(tmp_path: Path) -> None:
    store = LocalDiskStore(tmp_path)
    root = tmp_path.resolve()
    assert store.shard_pattern("mnist", 1, W1) == f"{root}/mnist/1/{W1}/mnist-%06d.tar"
    assert store.shard_pattern("team/mnist", 12, W2) == f"{root}/team/mnist/12/{W2}/mnist-%06d.tar"
    for bad in ("", "../x", "0123456789ABCDEF", "0123456789abcdef\n", None):
        with pytest.raises(ValueError, match="write id"):
            store.shard_pattern("mnist", 1, bad)  # type: ignore[arg-type]


def test_a_percent_sign_in_the_root_is_escaped(tmp_path: Path) -> None:
    store = LocalDiskStore(tmp_path / "100%")
    pattern = store.shard_pattern("x", 1, W1)
    assert pattern % 3 == f"{tmp_path.resolve()}/100%/x/1/{W1}/x-000003.tar"


@pytest.mark.parametrize("name", ["mnist", "team/mnist", "a.b_c-d", "3dshapes", "a/b/c/d", "v2"])
def test_good_names(name: str) -> None:
    assert validate_dataset_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/abs",
        "../x",
        "x/..",
        "x/../y",
        "a//b",
        "a/",
        "Mnist",
        "sp ace",
        "x@1",
        "1",
        "x/22",
        ".x",
        "-x",
        "a\\b",
        "a/b/c/d/e",
        "é",
        "a\x00b",
        "mnist\n",
        "team\n/mnist",
        "team/mnist\n",
        7,
        None,
    ],
)
def test_bad_names(name: object) -> None:
    with pytest.raises(ValueError):
        validate_dataset_name(name)


def test_the_store_refuses_locations_outside_its_root(tmp_path: Path) -> None:
    store = LocalDiskStore(tmp_path / "store")
    for outside in (
        str(tmp_path / "elsewhere.tar"),
        f"{tmp_path}/store/../x.tar",
        "s3://bucket/x.tar",
        str(tmp_path / "store"),
    ):
        with pytest.raises(StoreError, match="outside"):
            store.open_sink(outside)
        assert not store.owns(outside)
    assert store.owns(str(tmp_path / "store" / "x" / "1" / "x-000000.tar"))
    assert store.owns(f"file://{tmp_path}/store/x/1/x-000000.tar")


def test_shards_appear_whole_or_not_at_all(tmp_path: Path) -> None:
    store = LocalDiskStore(tmp_path)
    writer: ShardWriter[object] = ShardWriter(
        store.shard_pattern("atomic", 1, W1), maxcount=3, sink_factory=store.open_sink
    )
    writer.write_all(make_samples(4))  # the first shard is finished, the second is open
    directory = tmp_path / "atomic" / "1" / W1
    finished = ["atomic-000000.tar", "atomic-000000.tar.idx"]
    # shards are committed on the writer's background thread: the finished one may not be
    # visible yet, but nothing else (no open shard, no partial file) ever is
    names = [p.name for p in directory.iterdir()] if directory.exists() else []
    assert set(n for n in names if not n.startswith(".")) <= set(finished)
    writer.abort()  # keeps the finished shard, drops the open one
    assert sorted(p.name for p in directory.iterdir()) == finished  # no temporary left


def test_delete_write_removes_one_write_and_empty_parents(tmp_path: Path) -> None:
    store = LocalDiskStore(tmp_path)
    for version, write_id in ((1, W1), (1, W2), (2, W1)):
        with ShardWriter(
            store.shard_pattern("team/x", version, write_id), sink_factory=store.open_sink
        ) as writer:
            writer.write_all(make_samples(2))
    store.delete_write("team/x", 1, W1)
    assert sorted(os.listdir(tmp_path / "team" / "x" / "1")) == [W2]  # the other write stays
    store.delete_write("team/x", 1, W1)  # idempotent
    store.delete_write("team/x", 1, W2)
    assert sorted(os.listdir(tmp_path / "team" / "x")) == ["2"]
    store.delete_write("team/x", 2, W1)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError):
        store.delete_write("../x", 1, W1)
    with pytest.raises(ValueError):
        store.delete_write("x", 0, W1)
    with pytest.raises(ValueError):
        store.delete_write("x", 1, "..")
