"""``atdata inspect``, ``preview`` and ``verify`` handle member-layout shards and index
entries; a published schema (JSON Schema record) keeps each field's member extensions."""

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import atdata
from atdata.atmosphere._jsonschema import from_json_schema, to_json_schema
from atdata.cli.app import app
from atdata.index import Index
from atdata.members import member_layout

runner = CliRunner()


@atdata.packable
class Clip:
    audio: bytes = atdata.member("wav", "flac")
    transcript: str = atdata.member("txt")
    speaker: int = atdata.member("cls")
    info: dict[str, Any] | None = atdata.member("json", default=None)


def clips(n: int) -> list[Clip]:
    return [Clip(b"RIFF" + bytes([i]) * 40, f"said {i}", i % 3, {"i": i}) for i in range(n)]


def test_inspect_preview_and_verify_member_shards(home: Path, tmp_path: Path) -> None:
    written = atdata.write_samples(clips(12), str(tmp_path / "c-%06d.tar"), maxcount=5)
    pattern = str(tmp_path / "c-*.tar")
    shown = runner.invoke(app, ["inspect", pattern, "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["count"] == 12 and data["layout"] == "members"
    fields = {f["name"]: f for f in data["schema"]["fields"]}
    assert fields["txt"]["type"]["kind"] == "str" and fields["cls"]["type"]["kind"] == "int"
    assert fields["wav"]["members"] == ["wav"]
    human = runner.invoke(app, ["inspect", pattern])
    assert "members (one tar member per field" in human.stdout
    preview = runner.invoke(app, ["preview", pattern, "--json"])
    assert preview.exit_code == 0, preview.output
    assert "said 3" in preview.stdout
    ok = runner.invoke(app, ["verify", pattern])
    assert ok.exit_code == 0, ok.output
    with open(written.urls[1], "r+b") as f:
        f.seek(600)
        f.write(b"\x00\x01")
    bad = runner.invoke(app, ["verify", pattern])
    assert bad.exit_code == 1 and written.urls[1] in bad.stdout


def test_an_indexed_member_dataset_inspects_and_verifies(home: Path) -> None:
    with Index() as index:
        index.write(clips(7), name="clips", maxcount=3)
    shown = runner.invoke(app, ["inspect", "clips", "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["layout"] == "members" and data["count"] == 7
    assert [f["members"] for f in data["schema"]["fields"]] == [
        ["wav", "flac"],
        ["txt"],
        ["cls"],
        ["json"],
    ]
    assert runner.invoke(app, ["verify", "clips"]).exit_code == 0
    preview = runner.invoke(app, ["preview", "clips", "--json"])
    assert preview.exit_code == 0, preview.output
    rows = json.loads(preview.stdout)
    assert rows[4]["transcript"] == "said 4" and rows[4]["speaker"] == 1  # by field name
    assert rows[0]["audio"] == {"bytes": 44} and rows[2]["info"] == {"i": 2}


def test_a_published_schema_keeps_the_member_layout() -> None:
    schema = Clip.__atdata_schema__
    record = to_json_schema(schema)
    assert record["properties"]["audio"]["members"] == ["wav", "flac"]
    back = from_json_schema(record, name="Clip", version="1.0.0", description=None)
    assert back.layout == "members"
    assert [f.members for f in back.fields] == [f.members for f in schema.fields]
    rebuilt = back.to_sample_type()
    layout = member_layout(rebuilt)
    assert layout is not None
    sample = layout.decode({"flac": b"fLaC", "txt": b"hi", "cls": b"2"})
    assert (sample.audio, sample.transcript, sample.speaker, sample.info) == (
        b"fLaC",
        "hi",
        2,
        None,
    )
    record["properties"]["audio"]["members"] = ["../../etc/passwd"]
    with pytest.raises(atdata.SchemaError):
        from_json_schema(record, name="Clip", version="1.0.0", description=None)
