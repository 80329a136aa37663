"""Derive on a REAL two-node Ray cluster on loopback (tests/ray_cluster.py): the same bytes as
in-process and the process pool, tasks spread over both nodes, S3 as the shared store with no
credentials in the task payload, and Ray Data in and out of the index."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import atdata
from atdata.derive import InProcessExecutor, ProcessPoolExecutor
from atdata.derive.executors import DeriveTask, TaskResult
from atdata.derive.ray_executor import RayExecutor, task_payload
from atdata.index import Index
from atdata.index.providers.sqlite import SQLiteProvider
from atdata.stores.s3 import S3DataStore
from derive_transforms import CALLS, count_words, frames
from ray_cluster import HEAD_IP, NODE_IP, RayCluster, ray_cluster
from s3_backends import S3Backend, make_s3_backend

__all__ = ["ray_cluster"]

SECRET = "do-not-ship-this-secret-0b1c"


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Index]:
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ATDATA_INDEX_URL", raising=False)
    CALLS.clear()
    with Index(home=tmp_path / "home") as idx:
        yield idx


def _sha256s(paths: list[str]) -> list[str]:
    return [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]


def test_ray_writes_the_same_bytes_as_in_process_and_the_pool_on_both_nodes(
    ray_cluster: RayCluster, index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    index.write(frames(0, 60), "frames", maxcount=10)
    finished: list[TaskResult] = []

    local = index.derive("frames", count_words, "local", executor=InProcessExecutor())
    pooled = index.derive("frames", count_words, "pooled", executor=ProcessPoolExecutor(2))
    executor = RayExecutor(ray_cluster.address, node_ip_address=HEAD_IP)
    on_ray = index.derive(
        "frames", count_words, "on_ray", executor=executor, on_task=finished.append
    )
    assert len(finished) == 6 and len(on_ray.shards) == 6
    files = {e.name: [s.url for s in e.shards] for e in (local, pooled, on_ray)}
    assert _sha256s(files["on_ray"]) == _sha256s(files["local"]) == _sha256s(files["pooled"])
    assert [s.checksum for s in on_ray.shards] == [s.checksum for s in local.shards]
    assert on_ray.cid == local.cid
    assert [s.words for s in index.load(on_ray.ref)] == [s.words for s in index.load(local.ref)]
    # the transform ran here only for the in-process derive (the others ran in other processes)
    assert len(CALLS) == 60
    lineage = index.lineage(on_ray.ref)
    assert lineage is not None and len(lineage.tasks) == 6


def test_both_nodes_run_atdata_from_the_shared_environment(ray_cluster: RayCluster) -> None:
    ray = ray_cluster.ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=1)
    def where() -> tuple[str, str]:
        import atdata as imported

        return str(ray.util.get_node_ip_address()), imported.__version__

    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    refs = [
        where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote()
        for n in nodes
    ]
    assert sorted(ray.get(refs)) == [(HEAD_IP, atdata.__version__), (NODE_IP, atdata.__version__)]


def test_small_shards_are_grouped_into_fewer_ray_tasks(
    ray_cluster: RayCluster, index: Index
) -> None:
    index.write(frames(0, 40), "frames", maxcount=5)
    executor = RayExecutor(ray_cluster.address, node_ip_address=HEAD_IP, min_task_samples=20)
    tasks = [
        DeriveTask(i, f"t{i}", (_input(5),), None, "", str, None)  # type: ignore[arg-type]
        for i in range(8)
    ]
    assert [[t.index for t in g] for g in executor.groups(tasks)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    grouped = index.derive("frames", count_words, "grouped", executor=executor)
    single = index.derive("frames", count_words, "single", executor=InProcessExecutor())
    assert [s.checksum for s in grouped.shards] == [s.checksum for s in single.shards]


def _input(count: int) -> Any:
    from atdata.derive.executors import InputShard

    return InputShard("file:///x.tar", "0" * 64, count)


def test_on_s3_the_nodes_write_to_the_bucket_with_their_own_credentials(
    ray_cluster: RayCluster, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    s3: S3Backend = make_s3_backend(request, "moto")
    config = s3.config.replace(secret_access_key=SECRET)
    store = S3DataStore(bucket=s3.bucket, prefix="datasets", config=config)
    with Index(SQLiteProvider(tmp_path / "index.db"), data_store=store) as index:
        index.write(frames(0, 30), "frames", maxcount=10)
        captured: list[bytes] = []
        executor = _Capturing(ray_cluster.address, node_ip_address=HEAD_IP, captured=captured)
        on_ray = index.derive("frames", count_words, "counts", executor=executor)
        local = index.derive("frames", count_words, "local", executor=InProcessExecutor())
        assert all(s.url.startswith(f"s3://{s3.bucket}/datasets/") for s in on_ray.shards)
        assert [s.checksum for s in on_ray.shards] == [s.checksum for s in local.shards]
        bodies = [s3.client.get_object(Bucket=s3.bucket, Key=_key(s.url)) for s in on_ray.shards]
        digests = [hashlib.sha256(b["Body"].read()).hexdigest() for b in bodies]
        assert digests == [s.checksum.digest for s in local.shards]
        assert [s.i for s in index.load(on_ray.ref)] == list(range(30))
    # what went to the cluster: the endpoint, no secret
    assert len(captured) == 3
    for payload in captured:
        assert SECRET.encode() not in payload
        (task,) = pickle.loads(payload)
        shipped = task.open_sink.__self__.config
        assert shipped.endpoint_url == s3.endpoint and shipped.secret_access_key is None


def _key(url: str) -> str:
    return url.split("/", 3)[3]


class _Capturing(RayExecutor):
    """A RayExecutor that keeps the payloads it sends (the bytes a node receives)."""

    def __init__(self, *args: Any, captured: list[bytes], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.captured = captured

    def groups(self, tasks: Any) -> list[list[DeriveTask]]:
        made = super().groups(tasks)
        self.captured.extend(task_payload(g) for g in made)
        return made


@atdata.packable
class Pixels:
    i: int
    label: str
    image: atdata.NDArray[np.uint8]


def test_to_ray_reads_one_block_per_shard_and_write_ray_types_it_back(
    ray_cluster: RayCluster, index: Index
) -> None:
    samples = [Pixels(i, f"l{i}", np.full((2, 3), i, dtype=np.uint8)) for i in range(25)]
    written = index.write(samples, "pixels", maxcount=10)
    ds = index.load("pixels")
    ray_ds = ds.to_ray()
    rows = sorted(ray_ds.take_all(), key=lambda r: int(r["i"]))
    assert [int(r["i"]) for r in rows] == list(range(25))
    assert rows[7]["label"] == "l7"
    assert isinstance(rows[7]["image"], np.ndarray) and rows[7]["image"].tolist() == [[7] * 3] * 2
    assert ray_ds.materialize().num_blocks() == len(written.shards) == 3
    doubled = ray_ds.map(_double)
    entry = atdata.from_ray(doubled, index=index, name="doubled", sample_type=Pixels)
    back = sorted(index.load(entry.ref), key=lambda p: p.i)
    assert [p.i for p in back] == list(range(25))
    assert back[3].image.dtype == np.uint8 and back[3].image.tolist() == [[6] * 3] * 2
    assert [p.label for p in back][:2] == ["l0", "l1"]


def _double(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "image": row["image"] * 2}


def test_task_payloads_leave_s3_keys_out_where_plain_pickle_keeps_them(tmp_path: Path) -> None:
    """No cluster needed: the payload of a task over an S3 store (its sink and its reader's
    opener both hold the store's config) has the endpoint but not the keys."""
    from atdata.derive.executors import InputShard
    from atdata.derive.transform import as_transform
    from atdata.index._facade_datasets import _EntryShardOpener
    from atdata.sources.s3 import S3Config

    config = S3Config(
        endpoint_url="http://127.0.0.1:9", access_key_id="AKIDKEEP", secret_access_key=SECRET
    )
    store = S3DataStore(bucket="b", prefix="p", config=config)
    reader = atdata.Dataset(["s3://b/p/x.tar"], source_factory=_EntryShardOpener(store, []))
    task = DeriveTask(
        0, "t0", (InputShard("s3://b/p/x.tar", "0" * 64, 1),), reader,
        "s3://b/p/out-%03d.tar", store.open_sink, as_transform(count_words),
    )  # fmt: skip
    assert SECRET.encode() in pickle.dumps(task)  # what a plain pickle would ship
    payload = task_payload([task])
    assert SECRET.encode() not in payload and b"AKIDKEEP" not in payload
    (shipped,) = pickle.loads(payload)
    for held in (shipped.open_sink.__self__.config, shipped.reader.shards.factory.store.config):
        assert held.endpoint_url == "http://127.0.0.1:9"
        assert (held.access_key_id, held.secret_access_key, held.session_token) == (None,) * 3


def test_the_cli_joins_the_cluster_its_ray_address_names(
    ray_cluster: RayCluster, index: Index
) -> None:
    """``atdata derive --executor ray --ray-address ADDR`` in another process joins the cluster
    at ADDR, over a ``$RAY_ADDRESS`` that names a closed port (so a run that ignored the option
    would fail, not start a local Ray), and writes what an in-process derive writes."""
    import json
    import os
    import subprocess
    import sys

    from ray_cluster import TESTS, cluster_env
    from services import refused_port

    index.write(frames(0, 20), "frames", maxcount=10)
    env = cluster_env()
    env["RAY_ADDRESS"] = f"127.0.0.1:{refused_port()}"
    argv = [sys.executable, "-m", "atdata.cli", "derive", "frames", "derive_transforms:count_words"]
    argv += ["cli", "--executor", "ray", "--ray-address", ray_cluster.address, "--json"]
    done = subprocess.run(
        argv, env=env, cwd=TESTS, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    made = json.loads(done.stdout)
    assert os.environ.get("ATDATA_HOME") == env["ATDATA_HOME"]
    local = index.derive("frames", count_words, "local", executor=InProcessExecutor())
    assert (made["count"], made["shards"], made["cid"]) == (20, 2, local.cid)
