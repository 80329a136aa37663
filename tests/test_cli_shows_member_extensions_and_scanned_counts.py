"""``atdata schema show`` lists each field's member extensions for a member-layout schema (text
and JSON), and ``atdata inspect`` of shards written by ``webdataset`` with no ``.idx`` sidecar
counts their samples by scanning them (one sample per key, not per member)."""

import json
from pathlib import Path
from typing import Any

import webdataset as wds
from typer.testing import CliRunner

import atdata
from atdata.cli.app import app
from atdata.index import Index

runner = CliRunner()


@atdata.packable
class Pic:
    image: bytes = atdata.member("jpg", "png")
    caption: str = atdata.member("txt")
    meta: dict[str, Any] | None = atdata.member("json", default=None)


def test_schema_show_lists_member_extensions(home: Path) -> None:
    with Index() as index:
        entry = index.write([Pic(b"\xff\xd8", f"c{i}", None) for i in range(3)], "pics")
    shown = runner.invoke(app, ["schema", "show", entry.schema_ref])
    assert shown.exit_code == 0, shown.output
    rows = {line.split()[0]: line for line in shown.stdout.splitlines() if line.strip()}
    assert "members" in rows["field"]
    assert ".jpg, .png" in rows["image"] and ".txt" in rows["caption"]
    assert ".json" in rows["meta"]
    data = json.loads(runner.invoke(app, ["schema", "show", entry.schema_ref, "--json"]).stdout)
    fields = {f["name"]: f for f in data["schema"]["fields"]}
    assert fields["image"]["members"] == ["jpg", "png"]


def test_schema_show_of_a_msgpack_schema_has_no_members_column(home: Path) -> None:
    @atdata.packable
    class Plain:
        caption: str

    with Index() as index:
        entry = index.write([Plain(f"c{i}") for i in range(2)], "plain")
    shown = runner.invoke(app, ["schema", "show", entry.schema_ref])
    assert shown.exit_code == 0, shown.output
    assert "members" not in shown.stdout


def test_inspect_counts_a_webdataset_shard_without_sidecar(home: Path, tmp_path: Path) -> None:
    with wds.ShardWriter(str(tmp_path / "w-%06d.tar"), maxcount=7, verbose=0) as sink:
        for i in range(17):
            sink.write({"__key__": f"k{i:04d}", "txt": f"t{i}", "cls": i % 3, "json": {"i": i}})
    assert not list(tmp_path.glob("*.idx"))
    shown = runner.invoke(app, ["inspect", str(tmp_path / "w-*.tar"), "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["count"] == 17 and data["layout"] == "members"
    assert [s["count"] for s in data["shards"]] == [7, 7, 3]
    human = runner.invoke(app, ["inspect", str(tmp_path / "w-*.tar")])
    assert "17" in human.stdout and "full scan of 3 shard(s)" in human.stdout
