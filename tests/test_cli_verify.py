"""``atdata verify`` re-hashes shards: index datasets against their record, paths against the
sha256 in each ``.idx`` sidecar; any mismatch is listed and the exit status is 1."""

import json
import os
from pathlib import Path

from typer.testing import CliRunner

import atdata
from atdata.cli.app import app
from atdata.index import Index

runner = CliRunner()


class Row(atdata.PackableSample):
    i: int
    text: str


def rows(n: int) -> list[Row]:
    return [Row(i, "x" * (i % 50)) for i in range(n)]


def flip_byte(path: str, offset: int = 700) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def test_verify_an_index_dataset_passes_then_names_the_corrupt_shard(home: Path) -> None:
    with Index() as index:
        entry = index.write(rows(30), name="rows", maxcount=10)
    ok = runner.invoke(app, ["verify", "rows"])
    assert ok.exit_code == 0, ok.output
    assert "3 shard(s) of rows@1 match" in ok.stdout

    flip_byte(entry.urls[1])
    bad = runner.invoke(app, ["verify", "@local/rows@1"])
    assert bad.exit_code == 1
    assert "1 of 3 shard(s) of rows@1 do not match" in bad.stdout
    assert entry.urls[1] in bad.stdout
    assert entry.urls[0] not in bad.stdout

    as_json = runner.invoke(app, ["verify", "rows@1", "--json"])
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["ok"] is False and data["shards"] == 3
    (problem,) = data["problems"]
    assert problem["url"] == entry.urls[1]
    assert problem["expected"] == entry.shards[1].checksum.digest


def test_verify_paths_against_their_sidecars(home: Path, tmp_path: Path) -> None:
    infos = atdata.write_samples(rows(30), str(tmp_path / "r-%06d.tar"), maxcount=10).shard_infos
    ok = runner.invoke(app, ["verify", str(tmp_path / "r-*.tar"), "--json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data == {
        "target": str(tmp_path / "r-*.tar"),
        "ok": True,
        "shards": 3,
        "bytes": sum(i.size for i in infos),
        "problems": [],
    }

    flip_byte(infos[0].url)
    with open(infos[2].url, "ab") as f:
        f.write(b"\0" * 512)
    bad = runner.invoke(app, ["verify", "r-{000000..000002}.tar", "--json"])
    assert bad.exit_code == 1
    problems = {p["url"]: p for p in json.loads(bad.stdout)["problems"]}
    assert set(problems) == {"r-000000.tar", "r-000002.tar"}
    assert problems["r-000000.tar"]["problem"] == "sha256 differs"
    assert problems["r-000000.tar"]["expected"] == infos[0].checksum.digest
    assert problems["r-000002.tar"]["problem"] == "size differs"


def test_a_shard_without_a_recorded_sha256_cannot_pass(home: Path, tmp_path: Path) -> None:
    (info,) = atdata.write_samples(rows(5), str(tmp_path / "r-%06d.tar")).shard_infos
    os.remove(info.url + ".idx")
    result = runner.invoke(app, ["verify", info.url])
    assert result.exit_code == 1
    assert "no .idx sidecar" in result.stdout


def test_verify_of_a_missing_dataset_is_an_error(home: Path) -> None:
    result = runner.invoke(app, ["verify", "@local/absent"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no dataset 'absent'")
