"""Names are matched as whole strings: a trailing newline (which ``$`` lets through) is refused
in dataset names, references, repository, schema, lens and field names."""

from pathlib import Path

import pytest
from index_helpers import make_samples
from index_types import Point

from atdata.errors import SchemaError
from atdata.index import Index
from atdata.index.refs import parse_ref, parse_semver, validate_lens_name, validate_repo_name
from atdata.schema import Schema, validate_identifier
from atdata.stores import LocalDiskStore, validate_dataset_name


@pytest.mark.parametrize("name", ["mnist\n", "team/mnist\n", "team\n/mnist"])
def test_dataset_names(name: str) -> None:
    with pytest.raises(ValueError, match="dataset name"):
        validate_dataset_name(name)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("mnist\n", "dataset"),
        ("mnist\n@1", "dataset"),
        ("mnist@1\n", "dataset"),
        ("atdata://local\n/dataset/mnist@1", "dataset"),
        ("atdata://local/dataset/mnist@1\n", "dataset"),
        ("prod\n", "label"),
        ("Image\n", "schema"),
        ("Image@1.0.0\n", "schema"),
        ("Image\n@1.0.0", "schema"),
        ("to_label\n", "lens"),
    ],
)
def test_references(text: str, kind: str) -> None:
    with pytest.raises(ValueError):
        parse_ref(text, kind)  # type: ignore[arg-type]


def test_repository_lens_and_semver_parts() -> None:
    with pytest.raises(ValueError):
        validate_repo_name("local\n")
    with pytest.raises(ValueError):
        validate_lens_name("to_label\n")
    with pytest.raises(ValueError):
        parse_semver("1.0.0\n")


def test_schema_and_field_names() -> None:
    good = Schema.from_type(Point).to_dict()
    assert Schema.from_dict(good).name == "Point"
    with pytest.raises(SchemaError, match="schema name"):
        Schema.from_dict({**good, "name": "Point\n"})
    fields = [dict(f) for f in good["fields"]]
    fields[0]["name"] += "\n"
    with pytest.raises(SchemaError, match="field name"):
        Schema.from_dict({**good, "fields": fields})
    with pytest.raises(SchemaError):
        validate_identifier("x\n", "field name")


def test_writing_under_a_name_with_a_newline_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Index(data_store=LocalDiskStore(data), home=tmp_path) as index:
        with pytest.raises(ValueError, match="dataset name"):
            index.write(make_samples(2), "mnist\n")
        with pytest.raises(ValueError, match="dataset name"):
            index.insert(str(tmp_path / "x.tar"), "mnist\n")
        assert not data.exists() or list(data.iterdir()) == []
        assert index.list_datasets() == []
