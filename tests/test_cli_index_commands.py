"""``atdata ls``, ``rm``, ``version`` and ``diagnose`` on a real SQLite index in a temporary
``ATDATA_HOME``; every command is registered, and ``@handle`` / ``at://`` arguments are
atmosphere references."""

import json
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import atdata
from atdata.cli.app import app
from atdata.index import Index

runner = CliRunner()


class Row(atdata.PackableSample):
    i: int


def write(name: str, n: int) -> atdata.ShardInfo | object:
    with Index() as index:
        return index.write([Row(i) for i in range(n)], name=name, maxcount=4)


def test_ls_of_an_empty_index(home: Path) -> None:
    result = runner.invoke(app, ["ls"])
    assert result.exit_code == 0, result.output
    assert "no datasets" in result.stdout
    assert json.loads(runner.invoke(app, ["ls", "--json"]).stdout) == []


def test_ls_lists_datasets_with_every_version(home: Path) -> None:
    write("rows", 5)
    write("rows", 9)
    write("team/other", 2)
    with Index() as index:
        index.label("stable", "rows@1")
    result = runner.invoke(app, ["ls", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(d["name"], d["latest"]) for d in data] == [("rows", 2), ("team/other", 1)]
    versions = data[0]["versions"]
    assert [(v["version"], v["count"], v["shards"]) for v in versions] == [(1, 5, 2), (2, 9, 3)]
    assert versions[0]["labels"] == ["stable"]
    assert versions[1]["schema_ref"] == "atdata://local/schema/Row@1.0.0"

    human = runner.invoke(app, ["ls", "@local"])
    assert human.exit_code == 0
    assert "team/other" in human.stdout
    assert "1 (stable), 2" in human.stdout


def test_rm_asks_first_and_deletes_the_stored_shards(home: Path) -> None:
    first = write("rows", 5)
    second = write("rows", 6)
    assert isinstance(first, atdata.index.DatasetEntry)
    assert isinstance(second, atdata.index.DatasetEntry)

    declined = runner.invoke(app, ["rm", "rows@1"], input="n\n")
    assert declined.exit_code == 1
    assert all(os.path.exists(u) for u in first.urls)

    accepted = runner.invoke(app, ["rm", "rows@1"], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "removed rows@1" in accepted.stdout
    assert not any(os.path.exists(u) for u in first.urls)
    with Index() as index:
        assert [e.version for e in index.history("rows")] == [2]

    gone = runner.invoke(app, ["rm", "rows@1", "--yes"])
    assert gone.exit_code == 1
    assert "no dataset 'rows@1'" in gone.stderr


def test_rm_all_versions_and_labelled_versions(home: Path) -> None:
    write("rows", 3)
    write("rows", 4)
    with Index() as index:
        index.label("keep", "rows@2")
    refused = runner.invoke(app, ["rm", "@local/rows", "-y"])
    assert refused.exit_code == 1
    assert "--force" in refused.stderr
    forced = runner.invoke(app, ["rm", "rows", "--all", "--force", "-y"])
    assert forced.exit_code == 0, forced.output
    assert "removed rows@1" in forced.stdout and "removed rows@2" in forced.stdout
    assert json.loads(runner.invoke(app, ["ls", "--json"]).stdout) == []
    assert not (home / "data" / "rows").exists()


def test_rm_of_an_invalid_name_is_a_usage_error(home: Path) -> None:
    result = runner.invoke(app, ["rm", "../etc", "-y"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["rm", "rows@1", "--all", "-y"])
    assert result.exit_code == 2


def test_version(home: Path) -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert f"atdata {atdata.__version__}" in result.stdout
    data = json.loads(runner.invoke(app, ["version", "--json"]).stdout)
    assert data["atdata"] == atdata.__version__
    assert data["atdata_home"] == str(home)


def test_diagnose_checks_the_default_index_and_fails_on_a_bad_url(home: Path) -> None:
    result = runner.invoke(app, ["diagnose", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["index"]["status"] == "ok"
    assert str(home / "index.db") in checks["index"]["detail"]
    assert checks["index.sqlite.journal"]["detail"] == "journal_mode wal"

    human = runner.invoke(app, ["diagnose"])
    assert human.exit_code == 0
    assert "index.sqlite.schema" in human.stdout

    bad = runner.invoke(app, ["diagnose", "--index-url", "nosuch://host/db"])
    assert bad.exit_code == 1
    assert "fail" in bad.stdout


def test_every_command_is_registered_whatever_extras_are_installed(home: Path) -> None:
    listed = runner.invoke(app, ["--help"])
    assert listed.exit_code == 0
    for command in ("inspect", "preview", "verify", "ls", "login", "logout", "whoami", "publish"):
        assert f" {command} " in listed.stdout, command


def test_a_missing_extra_is_named_with_its_install_command(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The atmosphere commands import their extra when they run; without it, one line saying
    what to install (exit 1), not a traceback and not a missing command."""
    monkeypatch.setitem(sys.modules, "httpx", None)  # import fails: not installed
    result = runner.invoke(app, ["login", "http://127.0.0.1:9", "alice.test", "--password", "x"])
    assert result.exit_code == 1, result.output
    assert "pip install 'atdata[atmosphere]'" in result.stderr
    assert "Traceback" not in result.output


def test_atmosphere_arguments_are_resolved_as_atmosphere_references(home: Path) -> None:
    """``@handle``, ``@handle/name`` and ``at://`` go to the atmosphere in every command; these
    fail before any request is made."""
    schema_uri = "at://did:plc:abc/science.alt.dataset.schema/x"
    for command in ("preview", "verify"):
        result = runner.invoke(app, [command, schema_uri])
        assert result.exit_code == 1, result.output
        assert f"{command} takes a dataset" in result.stderr
    one = runner.invoke(app, ["ls", "@alice.example.com/mnist"])
    assert one.exit_code == 1 and "ls lists a whole account" in one.stderr
    bad = runner.invoke(app, ["verify", "@not_a_handle/x"])
    assert bad.exit_code == 1 and "not a valid handle" in bad.stderr
    assert "Traceback" not in bad.output
