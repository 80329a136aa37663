"""The Hugging Face Hub, end to end with the real ``huggingface_hub`` client against the loopback
Hub server (tests/hub_server.py): publish an index dataset, load it back by ``hf://`` in a fresh
process with no sample class, pinned revisions, idempotent and resumable publishing, tampered
files caught, private repositories, splits from cards and file names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import atdata
from atdata import Index, load_dataset
from atdata.errors import IntegrityError, NotFoundError, SourceError
from atdata.hub import HubPublished
from atdata.sample import packable
from atdata.sources import open_source
from hub_fixtures import hub
from hub_server import HubServer

__all__ = ["hub"]

pytestmark = pytest.mark.usefixtures("_home")


@packable
class Row:
    i: int
    name: str
    v: np.ndarray


@pytest.fixture
def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ATDATA_INDEX_URL", raising=False)
    monkeypatch.delenv("ATDATA_CACHE_DIR", raising=False)
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))


def _rows(n: int, seed: int = 0) -> list[Row]:
    rng = np.random.default_rng(seed)
    return [
        Row(i=i, name=f"r{i}", v=rng.standard_normal((3, 4)).astype(np.float32)) for i in range(n)
    ]


def _publish(index: Index, name: str, repo: str, **options: object) -> HubPublished:
    published = index.publish(name, to=f"hf://datasets/{repo}", **options)
    assert isinstance(published, HubPublished)
    return published


def test_round_trip_in_a_fresh_process_without_the_class(hub: HubServer) -> None:
    with Index() as index:
        index.write(_rows(10), name="rows", maxcount=4, license="mit", tags=["demo"])
        published = _publish(index, "rows", "org/rows")
    assert published.created and published.repo_id == "org/rows"
    assert any(p.endswith(".tar.idx") for p in published.uploaded)
    script = (
        "import json, atdata\n"
        "ds = atdata.load_dataset('hf://datasets/org/rows', split='train')\n"
        "rows = list(ds)\n"
        "print(json.dumps([type(rows[0]).__name__] + "
        "[[s.i, s.name, s.v.dtype.str, list(s.v.shape), s.v.tolist()] for s in rows]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got[0] == "Row"
    want = [[r.i, r.name, r.v.dtype.str, list(r.v.shape), r.v.tolist()] for r in _rows(10)]
    assert got[1:] == want


def test_the_card_carries_the_hub_metadata_and_the_schema(hub: HubServer) -> None:
    import yaml

    with Index() as index:
        index.write(_rows(5), name="rows", license="mit", tags=["demo"])
        entry = index.get("rows")
        _publish(index, "rows", "org/card")
    with open_source("hf://datasets/org/card/README.md").open() as f:
        text = f.read().decode()
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["license"] == "mit"
    assert {"atdata", "demo"} <= set(meta["tags"])
    assert meta["size_categories"] == ["n<1K"]
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": ["data/train/*.tar"]}]
    assert meta["atdata"]["entry_cid"] == entry.cid
    assert meta["atdata"]["schema"]["name"] == "Row"


def test_republishing_an_unchanged_version_uploads_nothing(hub: HubServer) -> None:
    with Index() as index:
        index.write(_rows(8), name="rows", maxcount=4)
        first = _publish(index, "rows", "org/idem")
        puts = hub.lfs_puts
        again = _publish(index, "rows", "org/idem")
    assert not again.created and again.uploaded == ()
    assert again.commit == first.commit
    assert hub.lfs_puts == puts
    assert len(hub.repos["org/idem"].commits) == 2  # the repository's initial commit + one


def test_an_interrupted_publish_resumes_without_resending(hub: HubServer) -> None:
    with Index() as index:
        index.write(_rows(12), name="rows", maxcount=3)  # 4 shards, each with 2 sidecars
        hub.fail_uploads_after = 3
        with pytest.raises(SourceError, match="run it again to resume"):
            _publish(index, "rows", "org/resume")
        assert hub.lfs_puts == 3 and len(hub.repos["org/resume"].commits) == 1
        hub.fail_uploads_after = None
        published = _publish(index, "rows", "org/resume")
    lfs = [p for p in published.uploaded if p != "README.md"]
    assert len(lfs) == 12 and hub.lfs_puts == 12  # the 3 already uploaded were not sent again
    assert len(set(hub.put_oids)) == len(hub.put_oids)
    assert len(hub.repos["org/resume"].commits) == 2
    assert [r.i for r in load_dataset(published.url, split="train")] == list(range(12))


def test_a_pinned_revision_holds_while_a_second_commit_lands_mid_epoch(hub: HubServer) -> None:
    with Index() as index:
        index.write(_rows(12, seed=1), name="rows", maxcount=3)
        first = _publish(index, "rows", "org/pin")
        ds = load_dataset("hf://datasets/org/pin", split="train")
        it = iter(ds)
        head = [next(it) for _ in range(4)]
        index.write(_rows(12, seed=2), name="rows", maxcount=3)  # rows@2, other values
        second = _publish(index, "rows", "org/pin")
        rest = list(it)
    assert second.commit != first.commit
    want = _rows(12, seed=1)
    got = head + rest
    assert [r.i for r in got] == list(range(12))
    assert all(np.array_equal(a.v, b.v) for a, b in zip(got, want, strict=True))
    # the first commit stays loadable by its sha; main now has the new values
    old = load_dataset(f"hf://datasets/org/pin@{first.commit}", split="train")
    assert np.array_equal(next(iter(old)).v, want[0].v)
    new = load_dataset("hf://datasets/org/pin", split="train")
    assert np.array_equal(next(iter(new)).v, _rows(12, seed=2)[0].v)


def test_a_second_epoch_reads_from_the_verified_shard_cache(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ATDATA_CACHE_DIR", str(tmp_path / "cache"))
    with Index() as index:
        index.write(_rows(9), name="rows", maxcount=3)
        _publish(index, "rows", "org/cached")
    ds = load_dataset("hf://datasets/org/cached", split="train")
    assert [r.i for r in ds] == list(range(9))
    shards = [p for p, _ in hub.downloads if p.endswith(".tar")]
    assert len(shards) == 3
    assert [r.i for r in ds] == list(range(9))
    assert [p for p, _ in hub.downloads if p.endswith(".tar")] == shards  # nothing fetched again


def test_a_broken_download_resumes_with_a_ranged_read(hub: HubServer) -> None:
    with Index() as index:
        index.write(_rows(6), name="rows", maxcount=6)
        _publish(index, "rows", "org/ranged")
    ds = load_dataset("hf://datasets/org/ranged", split="train")
    hub.cut_next_download_at = 4096
    assert [r.i for r in ds] == list(range(6))
    tars = [(p, r) for p, r in hub.downloads if p.endswith(".tar")]
    assert tars[0][1] is None and tars[1][1] == "bytes=4096-"


def test_a_tampered_shard_on_the_server_is_caught(hub: HubServer) -> None:
    with Index() as index:
        index.write(_rows(6), name="rows", maxcount=3)
        _publish(index, "rows", "org/tamper")
    path = sorted(p for p in hub.repos["org/tamper"].commits[-1].files if p.endswith(".tar"))[0]
    blob = hub.blob_path(hub.repos["org/tamper"].commits[-1].files[path].oid)
    data = bytearray(Path(blob).read_bytes())
    data[-1500] ^= 0x01
    hub.tamper("org/tamper", path, bytes(data))
    with pytest.raises(IntegrityError):
        list(load_dataset("hf://datasets/org/tamper", split="train"))


def test_a_private_repository_needs_the_token(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Index() as index:
        index.write(_rows(4), name="rows")
        _publish(index, "rows", "org/private", private=True)
    assert hub.repos["org/private"].private
    assert [r.i for r in load_dataset("hf://datasets/org/private", split="train")] == [0, 1, 2, 3]
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_TOKEN_PATH", str(Path(hub.root) / "no-token"))
    with pytest.raises(NotFoundError, match="private"):
        load_dataset("hf://datasets/org/private", split="train")


def test_splits_come_from_file_names_without_a_card(hub: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import CommitOperationAdd, HfApi

    from atdata import write_samples

    api = HfApi()
    api.create_repo("org/plain", repo_type="dataset")
    ops = []
    for split, seed in (("train", 1), ("test", 2), ("validation", 3)):
        out = tmp_path / f"{split}.tar"
        write_samples(_rows(3, seed), str(out))
        ops.append(CommitOperationAdd(f"{split}/part-0.tar", str(out)))
    api.create_commit("org/plain", ops, commit_message="add", repo_type="dataset")
    splits = load_dataset("hf://datasets/org/plain", Row)
    assert sorted(splits) == ["test", "train", "validation"]
    assert [r.i for r in splits["test"]] == [0, 1, 2]
    one = load_dataset("hf://datasets/org/plain/test/*.tar", Row, split="test")
    assert np.array_equal(next(iter(one)).v, _rows(3, 2)[0].v)


def test_unknown_schemes_fail_when_loading_not_when_iterating() -> None:
    with pytest.raises(SourceError, match="gopher"):
        load_dataset("gopher://example.invalid/data.tar")
    with pytest.raises(SourceError, match="hf://datasets"):
        load_dataset("hf://models/org/name")
    assert "hf" in atdata.sources.registered_schemes()
    assert os.environ.get("HF_ENDPOINT") is None or True


def test_the_cli_publishes_to_the_hub_and_says_when_nothing_changed(hub: HubServer) -> None:
    from typer.testing import CliRunner

    from atdata.cli.app import app

    with Index() as index:
        index.write(_rows(6), name="rows", maxcount=3)
    runner = CliRunner()
    to = "hf://datasets/org/cli"
    first = runner.invoke(app, ["publish", "rows", "--to", to, "--private", "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["created"] and report["repo"] == "org/cli" and hub.repos["org/cli"].private
    again = runner.invoke(app, ["publish", "rows", "--to", to, "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {**report, "created": False, "uploaded": []}
    bad = runner.invoke(app, ["publish", "rows", "--to", "s3://bucket/x"])
    assert bad.exit_code != 0 and "hf://datasets" in bad.output


def test_hf_datasets_streams_what_atdata_published(hub: HubServer) -> None:
    """The card's configs/data_files are what the Hub's own loader reads: HF ``datasets``
    (real library, fresh process, same loopback server) streams every published sample."""
    try:
        import datasets  # noqa: F401
    except ImportError:
        from services import unavailable

        unavailable("datasets missing: uv sync --all-extras")
    with Index() as index:
        index.write(_rows(7), name="rows", maxcount=3)
        _publish(index, "rows", "org/hfreads")
    script = (
        "import json, datasets\n"
        "datasets.disable_progress_bars()\n"
        "ds = datasets.load_dataset('org/hfreads', split='train', streaming=True)\n"
        "print(json.dumps(sorted(r['__key__'] for r in ds)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(json.loads(out.stdout.strip().splitlines()[-1])) == 7
