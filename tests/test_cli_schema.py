"""``atdata schema show/diff/ls``: stored schemas, dataset schemas and schemas inferred from shards.

``diff`` exits 0 for the same fields and 1 for different ones, naming each field that changed.
"""

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest
from typer.testing import CliRunner

import atdata
from atdata import NDArray
from atdata.cli.app import app
from atdata.index import Index

runner = CliRunner()


class Reading(atdata.PackableSample):
    """A sensor reading."""

    sensor: str
    value: float
    trace: Annotated[NDArray[np.float32], atdata.Shape(None, 3)]


def _reading_with_unit() -> type:
    class Reading(atdata.PackableSample):  # same name, one optional field more: a minor bump
        sensor: str
        value: float
        trace: Annotated[NDArray[np.float32], atdata.Shape(None, 3)]
        unit: str | None = None

    return Reading


def _reading_with_int_value() -> type:
    class Reading(atdata.PackableSample):  # value changes type: a major bump
        sensor: str
        value: int
        trace: Annotated[NDArray[np.float32], atdata.Shape(None, 3)]

    return Reading


class Other(atdata.PackableSample):
    sensor: str
    count: int


@pytest.fixture
def refs(home: Path) -> list[str]:
    with Index() as index:
        return [
            index.add_schema(Reading),
            index.add_schema(_reading_with_unit()),
            index.add_schema(_reading_with_int_value()),
        ]


def readings(n: int) -> list[Reading]:
    return [Reading(f"s{i}", i / 2, np.ones((4, 3), np.float32)) for i in range(n)]


def test_schema_show_by_ref_short_ref_and_dataset(home: Path, refs: list[str]) -> None:
    assert refs == [
        "atdata://local/schema/Reading@1.0.0",
        "atdata://local/schema/Reading@1.1.0",
        "atdata://local/schema/Reading@2.0.0",
    ]
    full = runner.invoke(app, ["schema", "show", refs[0], "--json"])
    assert full.exit_code == 0, full.output
    data = json.loads(full.stdout)
    assert data["ref"] == refs[0] and data["inferred"] is False
    assert [f["name"] for f in data["schema"]["fields"]] == ["sensor", "value", "trace"]

    newest = json.loads(runner.invoke(app, ["schema", "show", "Reading", "--json"]).stdout)
    assert newest["ref"] == refs[2]

    human = runner.invoke(app, ["schema", "show", "Reading@1.1.0"])
    assert human.exit_code == 0, human.output
    assert "Reading@1.1.0" in human.stdout
    assert "array float32 (?, 3)" in human.stdout
    assert "str | None" in human.stdout and "no (has a default)" in human.stdout

    with Index() as index:
        index.write(readings(3), name="readings")
    of_dataset = json.loads(
        runner.invoke(app, ["schema", "show", "@local/readings", "--json"]).stdout
    )
    assert of_dataset["ref"] == refs[0]


def test_schema_diff_exits_0_for_the_same_and_1_with_each_changed_field(
    home: Path, refs: list[str]
) -> None:
    same = runner.invoke(app, ["schema", "diff", "Reading@1.0.0", refs[0]])
    assert same.exit_code == 0, same.output
    assert "same fields" in same.stdout

    minor = runner.invoke(app, ["schema", "diff", "Reading@1.0.0", "Reading@1.1.0"])
    assert minor.exit_code == 1, minor.output
    assert "+ unit" in minor.stdout
    assert "1 added (a minor change)" in minor.stdout

    major = runner.invoke(app, ["schema", "diff", "Reading@1.1.0", "Reading@2.0.0", "--json"])
    assert major.exit_code == 1
    data = json.loads(major.stdout)
    assert data["same"] is False and data["change"] == "major"
    by_name = {f["name"]: f for f in data["fields"]}
    assert by_name["value"] == {"name": "value", "status": "changed", "a": "float", "b": "int"}
    assert by_name["unit"]["status"] == "removed"
    assert by_name["sensor"]["status"] == "same"

    human = runner.invoke(app, ["schema", "diff", "Reading@1.1.0", "Reading@2.0.0"])
    assert "~ value" in human.stdout and "float  ->  int" in human.stdout
    assert "- unit" in human.stdout


def test_schema_diff_against_shards_compares_with_the_inferred_schema(
    home: Path, tmp_path: Path, refs: list[str]
) -> None:
    (tmp_path / "r").mkdir()
    atdata.write_samples(readings(4), str(tmp_path / "r" / "r-%06d.tar"))
    atdata.write_samples([Other("a", 1)], str(tmp_path / "r" / "other-%06d.tar"))
    # declared (None, 3) matches the observed (4, 3): the same
    same = runner.invoke(app, ["schema", "diff", "Reading@1.0.0", "r/r-000000.tar"])
    assert same.exit_code == 0, same.output
    assert "inferred from the first sample" in same.stdout

    inferred = json.loads(runner.invoke(app, ["schema", "show", "r/r-*.tar", "--json"]).stdout)
    assert inferred["inferred"] is True
    trace = inferred["schema"]["fields"][2]
    assert trace == {
        "name": "trace",
        "type": {"kind": "array", "dtype": "<f4", "shape": [4, 3]},
        "required": True,
    }

    different = runner.invoke(app, ["schema", "diff", "r/other-000000.tar", "Reading@1.0.0"])
    assert different.exit_code == 1
    assert "- count" in different.stdout and "+ value" in different.stdout


def test_schema_diff_of_unknown_schemas_is_an_error_not_a_difference(
    home: Path, refs: list[str]
) -> None:
    result = runner.invoke(app, ["schema", "diff", "Reading@1.0.0", "Nope@1.0.0"])
    assert result.exit_code == 1
    assert "no schema 'Nope@1.0.0'" in result.stderr
    assert result.stdout == ""


def test_schema_ls_lists_every_version(home: Path, refs: list[str]) -> None:
    result = runner.invoke(app, ["schema", "ls", "--json"])
    assert result.exit_code == 0, result.output
    assert [r["ref"] for r in json.loads(result.stdout)] == refs
    human = runner.invoke(app, ["schema", "ls"])
    assert "2.0.0" in human.stdout
