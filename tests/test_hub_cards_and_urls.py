"""Hub dataset cards and ``hf://`` URLs: splits from a hand-written card's ``configs``, globs
pinned to one commit, and hostile cards or URLs refused with a clear error."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from atdata import Dataset, load_dataset, write_samples
from atdata.errors import SourceError
from atdata.hub import read_card
from atdata.sample import packable
from atdata.sources.hf import parse_hub_url
from hub_fixtures import hub
from hub_server import HubServer

__all__ = ["hub"]


@packable
class Point:
    x: int
    v: np.ndarray


def _points(n: int, offset: int = 0) -> list[Point]:
    return [Point(x=offset + i, v=np.arange(4, dtype=np.int16) + i) for i in range(n)]


def _repo_with_files(tmp_path: Path, repo: str, files: dict[str, list[Point] | str]) -> None:
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi()
    api.create_repo(repo, repo_type="dataset")
    ops = []
    for i, (path, content) in enumerate(files.items()):
        if isinstance(content, str):
            ops.append(CommitOperationAdd(path, content.encode()))
            continue
        local = tmp_path / f"f{i}.tar"
        write_samples(content, str(local))
        ops.append(CommitOperationAdd(path, str(local)))
    api.create_commit(repo, ops, commit_message="add", repo_type="dataset")


CARD = """---
license: apache-2.0
configs:
- config_name: default
  data_files:
  - split: train
    path: "shards/a-*.tar"
  - split: holdout
    path:
    - "shards/b-*.tar"
---
# a dataset not written by atdata
"""


def test_splits_follow_the_card_configs(hub: HubServer, tmp_path: Path) -> None:
    files: dict[str, list[Point] | str] = {
        "README.md": CARD,
        "shards/a-0.tar": _points(3),
        "shards/a-1.tar": _points(2, 3),
        "shards/b-0.tar": _points(2, 100),
        "shards/test-ignored.tar": _points(1, 900),  # in no data_files pattern
    }
    _repo_with_files(tmp_path, "org/configs", files)
    splits = load_dataset("hf://datasets/org/configs", Point)
    assert sorted(splits) == ["holdout", "train"]
    assert [p.x for p in splits["train"]] == [0, 1, 2, 3, 4]
    assert [p.x for p in splits["holdout"]] == [100, 101]


def test_a_glob_lists_one_commit_and_pins_every_url(hub: HubServer, tmp_path: Path) -> None:
    _repo_with_files(
        tmp_path, "org/glob", {"d/train-0.tar": _points(2), "d/train-1.tar": _points(2, 2)}
    )
    sha = hub.repos["org/glob"].commits[-1].sha
    ds = Dataset("hf://datasets/org/glob/d/train-*.tar", Point)
    assert ds.urls == [f"hf://datasets/org/glob@{sha}/d/train-{i}.tar" for i in range(2)]
    assert [p.x for p in ds] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("hf://models/org/name", "only dataset repositories"),
        ("hf://datasets/org", "expected hf://datasets"),
        ("hf://datasets/org/na me", "not a valid Hub"),
        ("hf://datasets/org/name/../../x.tar", "'.' or '..'"),
        ("hf://datasets/org/name@/x.tar", "bad revision"),
    ],
)
def test_bad_hub_urls_are_refused(url: str, problem: str) -> None:
    with pytest.raises(SourceError, match=re.escape(problem)):
        parse_hub_url(url)


@pytest.mark.parametrize(
    ("card", "problem"),
    [
        ("---\n[unclosed\n", "not closed"),
        ("---\n: : :\n---\n", "does not parse"),
        ("---\n- a list\n---\n", "not a mapping"),
        ("---\natdata: 3\n---\n", "'atdata' block is not a mapping"),
        ("---\natdata:\n  shards: [{path: x.tar, sha256: short}]\n---\n", "malformed"),
        ("---\nconfigs: [{data_files: [{split: train, path: 3}]}]\n---\n", "must be strings"),
        ("---\n!!python/object:os.system ls\n---\n", "does not parse"),
    ],
)
def test_hostile_cards_are_refused_with_a_clear_error(card: str, problem: str) -> None:
    with pytest.raises(SourceError, match=re.escape(problem)):
        read_card(card, "hf://datasets/org/x/README.md")


def test_a_card_without_front_matter_says_nothing() -> None:
    card = read_card("# just text\n", "x")
    assert card.data_files == {} and card.schema is None and card.shards == ()
