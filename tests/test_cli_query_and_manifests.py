"""``atdata query``, ``atdata manifest build`` and the field summaries of ``atdata inspect``."""

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import atdata
from atdata.cli.app import app
from atdata.index import Index
from query_helpers import Row, make_rows

runner = CliRunner()


@pytest.fixture
def shards(tmp_path: Path) -> str:
    atdata.write_samples(make_rows(80, 4), str(tmp_path / "c-%06d.tar"), maxcount=20)
    return str(tmp_path / "c-{000000..000003}.tar")


def _expected(pattern: str, test: "callable[[Row], bool]") -> list[str]:  # type: ignore[valid-type]
    return [s.id for s in atdata.Dataset[Row](pattern) if test(s)]


def test_query_prints_the_matching_samples_as_json(shards: str) -> None:
    result = runner.invoke(app, ["query", shards, "label >= 10 and flag", "--json", "-n", "100"])
    assert result.exit_code == 0, result.output
    got = [row["id"] for row in json.loads(result.stdout)]
    assert got == _expected(shards, lambda s: s.label >= 10 and s.flag)


def test_query_counts_and_limits(shards: str) -> None:
    result = runner.invoke(app, ["query", shards, "score > 0.5", "--count"])
    assert result.exit_code == 0
    assert int(result.stdout.strip().replace(",", "")) == len(
        _expected(shards, lambda s: s.score > 0.5)
    )
    limited = runner.invoke(app, ["query", shards, "score > 0.5", "--limit", "3", "--json"])
    assert len(json.loads(limited.stdout)) == 3


@pytest.mark.parametrize(
    "text",
    ["__import__('os').system('true')", "label == label", "label.__class__", "lambda: 1", "x ="],
)
def test_query_strings_are_never_evaluated(shards: str, text: str) -> None:
    result = runner.invoke(app, ["query", shards, text])
    assert result.exit_code == 1
    assert "error:" in result.stderr


def test_an_unknown_field_is_named(shards: str) -> None:
    result = runner.invoke(app, ["query", shards, "colour == 'red'"])
    assert result.exit_code == 1 and "$.colour" in result.stderr


def test_manifest_build_makes_queries_prune(tmp_path: Path) -> None:
    atdata.write_samples(
        make_rows(60, 2), str(tmp_path / "o-%06d.tar"), maxcount=20, manifests=False
    )
    pattern = str(tmp_path / "o-{000000..000002}.tar")
    assert not any(p.name.endswith(".manifest") for p in tmp_path.iterdir())
    result = runner.invoke(app, ["manifest", "build", pattern])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".manifest")) == [
        f"o-{i:06d}.tar.manifest" for i in range(3)
    ]
    ds = atdata.Dataset[Row](pattern)
    assert ds.count("id == 'id00030'") == 1  # answered from the new manifests
    assert ds.select(["__key__"])["__key__"] == [
        k for u in ds.urls for k in ds.shards.offsets(ds.urls.index(u)).keys
    ]


def test_manifest_build_for_an_index_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    index = Index()
    entry = index.write(make_rows(30, 1), "team/b", maxcount=10)
    for shard in entry.shards:
        os.remove(shard.url + ".manifest")
    result = runner.invoke(app, ["manifest", "build", "@local/team/b"])
    assert result.exit_code == 0, result.output
    assert all(os.path.exists(s.url + ".manifest") for s in entry.shards)


def test_inspect_shows_field_summaries_and_a_histogram(shards: str) -> None:
    result = runner.invoke(app, ["inspect", shards, "--histogram", "score"])
    assert result.exit_code == 0, result.output
    labels = [s.label for s in atdata.Dataset[Row](shards)]
    assert "Fields (from the manifests of 4 shard(s))" in result.stdout
    summary = result.stdout.split("Fields (from the manifests")[1]
    line = next(x for x in summary.splitlines() if x.startswith("label "))
    assert str(min(labels)) in line and str(max(labels)) in line
    assert "Histogram of score (80 values)" in result.stdout
    assert result.stdout.count("│") >= 20
