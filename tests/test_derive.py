"""``Index.derive``: lineage, incremental recompute, recorded failures, executors that agree
byte for byte, derived keys unique across the dataset and stable, and a derive killed with
SIGKILL that commits nothing and loses no finished work."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import atdata
from atdata.derive import InProcessExecutor, ProcessPoolExecutor
from atdata.derive.executors import DeriveTask, TaskResult
from atdata.errors import InvalidArgumentError
from atdata.index import Index, _facade_derive
from atdata.shards.writer import ShardWriter
from derive_transforms import (
    CALLS,
    Count,
    Frame,
    count_batch,
    count_words,
    frames,
    keep_even,
    stalling_count,
)


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ATDATA_INDEX_URL", raising=False)
    CALLS.clear()
    with Index(home=tmp_path / "home") as idx:
        yield idx


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The index of every task the work function ran (each one writes that task's shards)."""
    ran: list[int] = []
    real = _facade_derive.run_task

    def counting(task: DeriveTask) -> TaskResult:
        ran.append(task.index)
        return real(task)

    monkeypatch.setattr(_facade_derive, "run_task", counting)
    return ran


def shard_files(directory: Path, groups: dict[str, list[Frame]]) -> list[str]:
    """One shard file per group (its own keys), so unchanged groups keep their bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        atdata.write_samples(samples, directory / f"{name}.tar").shard_infos[0].url
        for name, samples in groups.items()
    ]


def test_lineage_names_parent_transform_and_inputs_of_each_output(index: Index) -> None:
    source = index.write(frames(0, 40), "frames", maxcount=10)
    out = index.derive("frames@1", count_words, "counts")
    assert [s.words for s in index.load(out.ref)][:5] == [1, 2, 3, 4, 1]
    lineage = index.lineage(out.ref)
    assert lineage is not None
    assert [(p.ref, p.cid) for p in lineage.parents] == [("frames@1", source.cid)]
    assert lineage.transform.name == "derive_transforms:count_words"
    assert lineage.transform.kind == "function"
    assert [t.inputs[0].sha256 for t in lineage.tasks] == [s.checksum.digest for s in source.shards]
    assert [d for t in lineage.tasks for d in t.output_sha256] == [
        s.checksum.digest for s in out.shards
    ]
    assert index.lineage("frames@1") is None
    assert [e.ref for e in index.derived_from("frames")] == ["counts@1"]


def test_a_lens_is_recorded_by_name_and_its_view_is_the_schema(index: Index) -> None:
    @atdata.lens
    def as_count(s: Frame) -> Count:
        return Count(i=s.i, words=0)

    index.write(frames(0, 5), "frames")
    out = index.derive("frames", as_count, "counts", version="2")
    lineage = index.lineage(out.ref)
    assert lineage is not None and lineage.transform.kind == "lens"
    assert lineage.transform.version == "2"
    assert out.schema_ref is not None and "Count" in out.schema_ref


def test_filter_and_batch_transforms(index: Index) -> None:
    index.write(frames(0, 30), "frames", maxcount=10)
    kept = index.derive("frames", keep_even, "evens")
    assert [s.i for s in index.load(kept.ref)] == list(range(0, 30, 2))
    batched = index.derive("frames", count_batch, "counts", batch_size=4)
    assert [s.i for s in index.load(batched.ref)] == list(range(30))


def test_incremental_run_touches_only_new_and_changed_shards(
    index: Index, tmp_path: Path, runs: list[int]
) -> None:
    v1 = shard_files(
        tmp_path / "v1", {"a": frames(0, 10), "b": frames(10, 10), "c": frames(20, 10)}
    )
    index.insert(v1, "frames")
    first = index.derive("frames@1", count_words, "counts")
    assert sorted(runs) == [0, 1, 2] and len(CALLS) == 30
    # frames@2: a unchanged, b changed, c gone, d new
    v2 = shard_files(
        tmp_path / "v2",
        {"a": frames(0, 10), "b": frames(10, 10, word="x y"), "d": frames(30, 10)},
    )
    index.insert(v2, "frames")
    plan = index.derive("frames@2", count_words, "counts", dry_run=True)
    assert plan.summary() == {
        "new": {"shards": 1, "samples": 10},
        "changed": {"shards": 1, "samples": 10},
        "reused": {"shards": 1, "samples": 10},
        "dropped": {"shards": 1, "samples": 10},
    }
    assert "reused" in plan.describe()
    runs.clear(), CALLS.clear()
    second = index.derive("frames@2", count_words, "counts")
    assert sorted(runs) == [1, 2]  # b and d; a's outputs were carried over
    assert sorted(CALLS) == list(range(10, 20)) + list(range(30, 40))
    assert second.shards[0].checksum == first.shards[0].checksum
    assert [s.i for s in index.load(second.ref)] == list(range(0, 20)) + list(range(30, 40))
    # the carried-over shard is the new version's own: removing the old version keeps it
    index.remove(first.ref)
    assert [s.i for s in index.load(second.ref)] == list(range(0, 20)) + list(range(30, 40))
    assert index.verify(second.ref) == []
    # nothing changed: nothing runs
    runs.clear()
    third = index.derive("frames@2", count_words, "counts")
    assert runs == [] and [s.checksum for s in third.shards] == [s.checksum for s in second.shards]
    # another transform identity: everything runs again
    plan = index.derive("frames@2", count_words, "counts", version="2", dry_run=True)
    assert plan.transform_changed and plan.summary()["reused"]["shards"] == 0
    index.derive("frames@2", count_words, "counts", version="2")
    assert sorted(runs) == [0, 1, 2]


def test_in_process_and_process_pool_write_identical_bytes(index: Index) -> None:
    index.write(frames(0, 50), "frames", maxcount=10)
    local = index.derive("frames", count_words, "local", executor=InProcessExecutor())
    pooled = index.derive("frames", count_words, "pooled", executor=ProcessPoolExecutor(2))
    assert [s.checksum for s in local.shards] == [s.checksum for s in pooled.shards]
    assert [s.count for s in local.shards] == [s.count for s in pooled.shards]
    assert local.cid == pooled.cid


def test_recorded_failures_keep_going_and_name_each_sample(index: Index, tmp_path: Path) -> None:
    bad = frames(0, 20)
    for i in (3, 14, 15):
        bad[i] = Frame(i=i, text="boom")
    index.write(bad, "frames", maxcount=10)
    with pytest.raises(atdata.TransformError, match=r"sample '00000003' of shard .*cannot") as err:
        index.derive("frames", count_words, "counts")
    assert isinstance(err.value.__cause__, ValueError)
    assert index.history("frames") and not [e for e in index.datasets if e.name == "counts"]
    out = index.derive("frames", count_words, "counts", on_error="record")
    assert out.count == 17
    lineage = index.lineage(out.ref)
    assert lineage is not None
    failures = [
        (f.key, os.path.basename(f.shard), f.error_type, f.message) for f in lineage.failures
    ]
    names = [os.path.basename(s.url) for s in index.get("frames").shards]
    assert failures == [
        ("00000003", names[0], "ValueError", "cannot count sample 3"),
        ("00000014", names[1], "ValueError", "cannot count sample 14"),
        ("00000015", names[1], "ValueError", "cannot count sample 15"),
    ]


def test_kill_9_mid_derive_commits_nothing_and_the_rerun_reuses_finished_shards(
    index: Index, tmp_path: Path, runs: list[int]
) -> None:
    index.write(frames(0, 40), "frames", maxcount=10)
    stalled = tmp_path / "stalled"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from atdata.index import Index\n"
        "from derive_transforms import stalling_count\n"
        "Index(home=sys.argv[2]).derive('frames', stalling_count, 'counts')\n"
    )
    env = {
        **os.environ,
        "ATDATA_HOME": os.environ["ATDATA_HOME"],
        "DERIVE_STALL_AT": "25",  # in the third shard: two tasks have finished
        "DERIVE_STALL_FILE": str(stalled),
    }
    tests_dir = str(Path(__file__).parent)
    home = os.environ["ATDATA_HOME"]
    proc = subprocess.Popen([sys.executable, "-c", script, tests_dir, home], env=env)
    try:
        deadline = time.monotonic() + 120
        while not stalled.exists():
            assert proc.poll() is None, "the derive subprocess ended before it stalled"
            assert time.monotonic() < deadline, "the derive subprocess never reached sample 25"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert [e.name for e in index.datasets] == ["frames"]  # nothing committed
    out = index.derive("frames", stalling_count, "counts")
    assert sorted(runs) == [2, 3]  # the two finished tasks were reused from the journal
    assert sorted(CALLS) == list(range(20, 40))
    assert [s.i for s in index.load(out.ref)] == list(range(40))
    assert out.version == 2  # version 1 was reserved by the killed run and never committed
    assert [e.ref for e in index.history("counts")] == ["counts@2"]


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
