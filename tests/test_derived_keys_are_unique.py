"""The sample keys of a derived dataset are unique across all its shards, and the same on every
executor, on a rerun and in the outputs an incremental derive carries over (input shards with
equal bytes included)."""

from pathlib import Path
from typing import Any

import pytest

from atdata.derive import InProcessExecutor, ProcessPoolExecutor
from atdata.errors import InvalidArgumentError
from atdata.index import Index
from atdata.shards.writer import ShardWriter
from derive_transforms import CALLS, count_words, frames
from test_derive import shard_files


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ATDATA_INDEX_URL", raising=False)
    CALLS.clear()
    with Index(home=tmp_path / "home") as idx:
        yield idx


def keys(index: Index, ref: str) -> list[str]:
    return [str(k) for k in index.load(ref).select(["__key__"])["__key__"]]


def test_keys_are_unique_across_shards_and_equal_on_both_executors(index: Index) -> None:
    index.write(frames(0, 50), "frames", maxcount=10)  # 5 input shards, 5 tasks
    local = index.derive("frames", count_words, "local", executor=InProcessExecutor(), maxcount=4)
    pooled = index.derive(
        "frames", count_words, "pooled", executor=ProcessPoolExecutor(2), maxcount=4
    )
    assert len(local.shards) == 15  # each task rolled over within itself: 4 + 4 + 2
    local_keys = keys(index, local.ref)
    assert len(local_keys) == 50 and len(set(local_keys)) == 50
    assert keys(index, pooled.ref) == local_keys
    again = index.derive("frames", count_words, "again", maxcount=4)  # a rerun, same keys
    assert keys(index, again.ref) == local_keys


def test_incremental_derives_keep_keys_stable_and_unique(index: Index, tmp_path: Path) -> None:
    # "a2" has the bytes of "a": two tasks with equal inputs still get keys of their own
    groups = {"a": frames(0, 10), "a2": frames(0, 10), "b": frames(10, 10)}
    index.insert(shard_files(tmp_path / "v1", groups), "frames")
    first = index.derive("frames@1", count_words, "counts")
    first_keys = keys(index, first.ref)
    assert len(first_keys) == 30 and len(set(first_keys)) == 30
    groups = {"a": frames(0, 10), "a2": frames(0, 10), "b": frames(10, 10, word="x y")}
    groups["d"] = frames(20, 10)
    index.insert(shard_files(tmp_path / "v2", groups), "frames")
    plan = index.derive("frames@2", count_words, "counts", dry_run=True)
    assert plan.summary()["reused"]["shards"] == 2  # a and a2, each from its own task
    second = index.derive("frames@2", count_words, "counts")
    second_keys = keys(index, second.ref)
    assert len(second_keys) == 40 and len(set(second_keys)) == 40
    assert second_keys[:20] == first_keys[:20]  # the carried-over outputs kept their keys
    fresh = index.derive("frames@2", count_words, "fresh")  # nothing to reuse: all computed
    assert keys(index, fresh.ref) == second_keys


def test_a_key_prefix_is_checked(tmp_path: Path) -> None:
    pattern = str(tmp_path / "x-%06d.tar")
    with pytest.raises(InvalidArgumentError, match="key_prefix"):
        ShardWriter(pattern, key_prefix="a.b")
    with pytest.raises(InvalidArgumentError, match="key_prefix"):
        ShardWriter(pattern, key_prefix="a-", key_field="i")
    with pytest.raises(InvalidArgumentError, match="too long"):
        ShardWriter(pattern, key_prefix="k" * 90)
