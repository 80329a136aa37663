"""``atdata inspect`` and ``atdata preview`` report real shards and real index entries.

Counts and checksums come from the offset-index sidecars (a tar is scanned only without one),
an index entry is reported from its record alone, and previews show arrays as dtype and shape.
"""

import json
import os
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest
from typer.testing import CliRunner

import atdata
from atdata import NDArray
from atdata.cli import _samples
from atdata.cli.app import app
from atdata.index import Index

runner = CliRunner()


class Frame(atdata.PackableSample):
    image: Annotated[NDArray[np.uint8], atdata.Shape(8, 8, 3)]
    label: int
    caption: str
    blob: bytes


def frames(n: int) -> list[Frame]:
    return [
        Frame(np.full((8, 8, 3), i % 256, np.uint8), i % 10, f"frame {i}", bytes(i % 7 + 1))
        for i in range(n)
    ]


@pytest.fixture
def shards(tmp_path: Path) -> list[atdata.ShardInfo]:
    out = tmp_path / "shards"
    out.mkdir()
    return atdata.write_samples(frames(25), str(out / "f-%06d.tar"), maxcount=10).shard_infos


def test_inspect_shards_counts_from_sidecars_and_infers_the_schema(
    home: Path, shards: list[atdata.ShardInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_scan(*_a: object, **_k: object) -> None:
        raise AssertionError("a shard with a sidecar must not be scanned")

    monkeypatch.setattr(_samples, "scan_offsets", no_scan)
    pattern = str(Path(shards[0].url).parent / "f-{000000..000002}.tar")
    result = runner.invoke(app, ["inspect", pattern, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["count"] == 25
    assert [s["count"] for s in data["shards"]] == [10, 10, 5]
    assert [s["sha256"] for s in data["shards"]] == [s.checksum.digest for s in shards]
    assert [s["size"] for s in data["shards"]] == [s.size for s in shards]
    assert all(s["offset_index"] for s in data["shards"])
    assert data["size"] == sum(s.size for s in shards)
    fields = {f["name"]: f["type"] for f in data["schema"]["fields"]}
    assert fields["image"] == {"kind": "array", "dtype": "|u1", "shape": [8, 8, 3]}
    assert fields["label"] == {"kind": "int"}
    assert fields["caption"] == {"kind": "str"}
    assert fields["blob"] == {"kind": "bytes"}

    human = runner.invoke(app, ["inspect", str(Path(shards[0].url).parent)])
    assert human.exit_code == 0, human.output
    assert "25" in human.stdout
    assert "offset indexes" in human.stdout
    assert "array uint8 (8, 8, 3)" in human.stdout
    assert shards[1].checksum.digest[:16] in human.stdout


def test_inspect_scans_a_shard_without_sidecar_and_says_so(
    home: Path, shards: list[atdata.ShardInfo]
) -> None:
    os.remove(shards[0].url + ".idx")
    result = runner.invoke(app, ["inspect", shards[0].url, "--json"])
    assert result.exit_code == 0, result.output
    (shard,) = json.loads(result.stdout)["shards"]
    assert shard == {
        "url": shards[0].url,
        "count": 10,
        "size": shards[0].size,
        "sha256": None,
        "offset_index": False,
    }
    human = runner.invoke(app, ["inspect", shards[0].url])
    assert human.exit_code == 0
    assert "full scan of 1 shard" in human.stdout
    assert "no offset index" in human.stderr


def test_inspect_an_index_dataset_reads_only_its_record(home: Path) -> None:
    with Index() as index:
        index.write(frames(12), name="team/frames", maxcount=5, description="test frames")
        entry = index.write(frames(7), name="team/frames", maxcount=5, tags=["a", "b"])
    for url in entry.urls:  # the record alone is enough: no shard is read
        os.remove(url)
    result = runner.invoke(app, ["inspect", "@local/team/frames", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["name"], data["version"], data["count"]) == ("team/frames", 2, 7)
    assert data["versions"] == [1, 2]
    assert data["cid"] == entry.cid
    assert data["tags"] == ["a", "b"]
    assert data["schema_ref"] == "atdata://local/schema/Frame@1.0.0"
    assert [f["name"] for f in data["schema"]["fields"]] == ["image", "label", "caption", "blob"]
    assert [s["checksum"]["digest"] for s in data["shards"]] == [
        s.checksum.digest for s in entry.shards
    ]

    human = runner.invoke(app, ["inspect", "@local/team/frames@1"])
    assert human.exit_code == 0, human.output
    assert "team/frames@1" in human.stdout
    assert "test frames" in human.stdout
    assert "Frame@1.0.0" in human.stdout
    assert "1, 2 (this is 1)" in human.stdout


def test_a_bare_name_is_an_index_dataset_unless_a_path_exists(
    home: Path, tmp_path: Path, shards: list[atdata.ShardInfo]
) -> None:
    with Index() as index:
        index.write(frames(3), name="frames")
    by_name = runner.invoke(app, ["inspect", "frames@1", "--json"])
    assert by_name.exit_code == 0, by_name.output
    assert json.loads(by_name.stdout)["kind"] == "dataset"
    # a directory of that name in the working directory wins
    os.symlink(Path(shards[0].url).parent, tmp_path / "frames")
    by_path = runner.invoke(app, ["inspect", "frames", "--json"])
    assert by_path.exit_code == 0, by_path.output
    assert json.loads(by_path.stdout)["kind"] == "shards"
    missing = runner.invoke(app, ["inspect", "nothing-here"])
    assert missing.exit_code == 1
    assert "no dataset 'nothing-here'" in missing.stderr


def test_preview_shows_arrays_as_dtype_and_shape_and_bytes_as_length(
    home: Path, shards: list[atdata.ShardInfo]
) -> None:
    result = runner.invoke(app, ["preview", shards[0].url, "--limit", "3"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "uint8 (8, 8, 3)" in out
    assert "<1 bytes>" in out and "<3 bytes>" in out
    assert "'frame 2'" in out and "frame 3" not in out
    assert "\\x00" not in out  # no raw bytes

    as_json = runner.invoke(app, ["preview", shards[0].url, "-n", "12", "--json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    assert len(rows) == 10  # the whole shard; fewer than asked
    assert rows[4] == {
        "__key__": "00000004",
        "image": {"dtype": "uint8", "shape": [8, 8, 3]},
        "label": 4,
        "caption": "frame 4",
        "blob": {"bytes": 5},
    }


def test_preview_crosses_shards_and_reads_index_datasets(home: Path) -> None:
    with Index() as index:
        index.write(frames(9), name="frames", maxcount=4)
    result = runner.invoke(app, ["preview", "@local/frames", "-n", "6", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["label"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert rows[5]["image"] == {"dtype": "uint8", "shape": [8, 8, 3]}
    human = runner.invoke(app, ["preview", "@local/frames@1", "-n", "2"])
    assert human.exit_code == 0
    assert "frames@1: first 2 sample(s)" in human.stdout


def test_inspect_and_preview_of_missing_things_fail_with_one_line(home: Path) -> None:
    for args in (["inspect", "missing-dir/x.tar"], ["preview", "@local/nope"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("error: ")
        assert len(result.stderr.strip().splitlines()) == 1
        assert result.stdout == ""
    bad = runner.invoke(app, ["inspect", "@local/Not_Valid"])
    assert bad.exit_code == 2
    assert "segment" in bad.output


class Tagged(atdata.PackableSample):
    caption: str
    tags: list[str]


def test_values_print_literally_never_as_markup(home: Path, tmp_path: Path) -> None:
    (info,) = atdata.write_samples(
        [Tagged("[bold]loud[/bold] :cat:", ["a", "b"])], str(tmp_path / "t-%06d.tar")
    ).shard_infos
    result = runner.invoke(app, ["preview", info.url])
    assert result.exit_code == 0, result.output
    assert "'[bold]loud[/bold] :cat:'" in result.stdout
    assert "['a', 'b']" in result.stdout
    shown = runner.invoke(app, ["inspect", info.url])
    assert "list[str]" in shown.stdout
