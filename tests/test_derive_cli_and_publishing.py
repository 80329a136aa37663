"""``atdata derive``, ``atdata lineage``, ``atdata derive-errors``, and the lineage a published
dataset record carries (readable by atdata 0.7, which ignores keys it does not know)."""

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from atdata.atmosphere import DatasetRecord, HttpShard, HttpStorage
from atdata.atmosphere.publish import MAX_PUBLISHED_LINEAGE_SHARDS, published_lineage
from atdata.cli.app import app
from atdata.index import Index
from atdata07 import VENV07_PYTHON, run_under_07
from derive_transforms import Frame, frames

runner = CliRunner()
DID = "did:plc:abcdefghijklmnopqrstuvwx"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("ATDATA_HOME", str(home))
    monkeypatch.delenv("ATDATA_INDEX_URL", raising=False)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    with Index() as index:
        bad = frames(0, 20)
        bad[5] = Frame(i=5, text="boom")
        index.write(bad, "frames", maxcount=10)
    return home


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


#: ``atdata derive`` of counts from frames, recording failures
DERIVE_RECORDING = (
    "derive",
    "frames",
    "derive_transforms:count_words",
    "counts",
    "--on-error",
    "record",
)


def test_derive_dry_run_then_derive_then_lineage_and_errors(home: Path) -> None:
    plan = json.loads(
        invoke(
            "derive", "frames", "derive_transforms:count_words", "counts", "--dry-run", "--json"
        ).stdout
    )
    assert plan["new"] == {"shards": 2, "samples": 20} and plan["previous"] is None
    with Index() as index:
        assert [e.name for e in index.datasets] == ["frames"]  # a dry run writes nothing
    made = json.loads(
        invoke(
            *DERIVE_RECORDING,
            "--executor",
            "process",
            "--workers",
            "2",
            "--json",
        ).stdout
    )
    assert made == {**made, "ref": "counts@1", "count": 19, "shards": 2, "failures": 1}
    again = invoke(*DERIVE_RECORDING, "--dry-run")
    assert "reused        2 shards" in again.stdout
    lineage = json.loads(invoke("lineage", "counts", "--json").stdout)
    assert [(a["ref"], a["transform"]) for a in lineage["ancestors"]] == [
        ("frames@1", "derive_transforms:count_words")
    ]
    assert json.loads(invoke("lineage", "frames", "--json").stdout)["descendants"] == ["counts@1"]
    shown = invoke("lineage", "counts@1").stdout
    assert "<- frames@1 by derive_transforms:count_words" in shown
    errors = json.loads(invoke("derive-errors", "counts@1", "--json").stdout)
    assert [(e["key"], e["error_type"], e["message"]) for e in errors] == [
        ("00000005", "ValueError", "cannot count sample 5")
    ]
    assert "cannot count sample 5" in invoke("derive-errors", "counts@1").stdout


def test_derive_errors_of_a_dataset_that_was_not_derived_is_a_usage_error(home: Path) -> None:
    result = runner.invoke(app, ["derive-errors", "frames@1"])
    assert result.exit_code == 2 and "not derived" in result.output


def test_a_failing_derive_from_the_cli_commits_nothing(home: Path) -> None:
    result = runner.invoke(app, ["derive", "frames", "derive_transforms:count_words", "counts"])
    assert result.exit_code == 1 and "cannot count sample 5" in result.output
    with Index() as index:
        assert [e.name for e in index.datasets] == ["frames"]


def test_published_lineage_keeps_digests_and_drops_local_paths(home: Path) -> None:
    from derive_transforms import count_words

    with Index() as index:
        entry = index.derive("frames", count_words, "counts", on_error="record")
        source = index.get("frames@1")
    published = published_lineage(entry.lineage)
    assert published is not None
    assert published["parents"] == [{"ref": "frames@1", "cid": source.cid}]
    assert published["transform"]["name"] == "derive_transforms:count_words"
    assert published["failures"] == 1
    assert published["shards"] == [
        {"inputs": [i.checksum.digest], "outputs": [o.checksum.digest]}
        for i, o in zip(source.shards, entry.shards, strict=True)
    ]
    assert str(home) not in json.dumps(published)  # no local paths, no failure messages
    record = DatasetRecord(
        "counts",
        f"at://{DID}/science.alt.dataset.schema/bafyreiabc",
        HttpStorage((HttpShard("https://example.org/a.tar", entry.shards[0].checksum),)),
        lineage=published,
    )
    value = record.to_record()
    assert DatasetRecord.from_record(value).lineage == published
    many = {"tasks": [{"inputs": [], "output_sha256": []}] * (MAX_PUBLISHED_LINEAGE_SHARDS + 1)}
    assert published_lineage(many) == {
        "parents": [],
        "transform": {},
        "failures": 0,
        "shardsOmitted": MAX_PUBLISHED_LINEAGE_SHARDS + 1,
    }
    if not VENV07_PYTHON.exists():
        pytest.skip("benchmarks/.venv07 (atdata 0.7) is not installed")
    script = textwrap.dedent(
        """
        import json, sys
        from atdata.atmosphere._lexicon_types import LexDatasetEntry
        entry = LexDatasetEntry.from_record(json.loads(sys.stdin.read()))
        print(entry.name)
        """
    )
    done = run_under_07(script, stdin=json.dumps(value))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "counts"
