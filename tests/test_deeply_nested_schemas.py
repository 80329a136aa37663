"""Schemas nest at most MAX_SCHEMA_DEPTH levels: deeper records and types are SchemaErrors.

A schema record nested thousands of levels deep (from an index, a file or the network) used to
end in RecursionError; now every path that reads one stops at the depth limit with an AtdataError,
and anything up to the limit still round-trips.
"""

import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import atdata
from atdata import AtdataError, AtdataIndexError, Index, SchemaError
from atdata.atmosphere._http import HttpReader
from atdata.errors import AtmosphereError
from atdata.net.error_body import error_summary
from atdata.schema import MAX_SCHEMA_DEPTH, FieldType, Schema, field_type_of
from http_server import serve_directory


def _nested_lists(depth: int) -> dict[str, Any]:
    t: dict[str, Any] = {"kind": "int"}
    for _ in range(depth):
        t = {"kind": "list", "item": t}
    return t


def _record(ftype: dict[str, Any], name: str = "Deep") -> dict[str, Any]:
    return {"name": name, "fields": [{"name": "x", "type": ftype}]}


def _nested_samples(depth: int) -> dict[str, Any]:
    rec = _record({"kind": "int"}, "Leaf")
    for _ in range(depth):
        rec = _record({"kind": "sample", "schema": rec}, "Outer")
    return rec


@pytest.mark.parametrize("depth", [MAX_SCHEMA_DEPTH, 3000])
def test_a_record_nested_too_deeply_is_a_schema_error(depth: int) -> None:
    for record in (_record(_nested_lists(depth)), _nested_samples(depth)):
        with pytest.raises(SchemaError, match=f"more than {MAX_SCHEMA_DEPTH} levels"):
            Schema.from_dict(record)


def test_records_up_to_the_limit_round_trip() -> None:
    for record in (_record(_nested_lists(MAX_SCHEMA_DEPTH - 1)), _nested_samples(10)):
        schema = Schema.from_dict(record)
        assert Schema.from_dict(json.loads(json.dumps(schema.to_dict()))) == schema


def test_annotations_nested_too_deeply_are_refused_at_class_creation() -> None:
    annotation: Any = int
    for _ in range(MAX_SCHEMA_DEPTH + 1):
        annotation = list[annotation]
    with pytest.raises(SchemaError, match="levels deep"):
        field_type_of(annotation, "$.x")
    ok: Any = int
    for _ in range(MAX_SCHEMA_DEPTH - 1):
        ok = list[ok]
    assert field_type_of(ok, "$.x").kind == "list"


@dataclasses.dataclass
class Node:
    value: int
    child: "Node | None" = None


def test_a_recursive_sample_type_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="recursive"):

        @atdata.packable
        class Tree:
            root: Node


@pytest.mark.parametrize(
    "ftype",
    [
        [1],
        {"kind": "list", "item": "int"},
        {"kind": "array", "dtype": "(2,)<f4"},
        {"kind": "array", "dtype": "<f4,<i4"},
        {"kind": "array", "shape": [True]},
    ],
    ids=["type-not-a-map", "item-not-a-map", "subarray-dtype", "structured-dtype", "bool-dim"],
)
def test_malformed_field_types_are_schema_errors(ftype: Any) -> None:
    with pytest.raises(SchemaError):
        Schema.from_dict(_record(ftype))
    with pytest.raises(SchemaError):
        FieldType.from_dict({"kind": "list", "item": ftype} if isinstance(ftype, dict) else ftype)


@pytest.mark.parametrize("depth", [100, 3000])
def test_an_index_holding_a_too_deep_schema_record_raises_an_index_error(
    tmp_path: Path, depth: int
) -> None:
    @atdata.packable
    class Flat:
        x: int

    index = Index(home=tmp_path)
    ref = index.add_schema(Flat)
    record = index.get_schema(ref).to_record()
    record["schema"] = _record({"kind": "NESTED"}, "Flat")
    index.close()
    # json.dumps cannot write 3000 levels either: splice the nested type in as text
    nested = '{"kind":"list","item":' * depth + '{"kind":"int"}' + "}" * depth
    text = json.dumps(record).replace('{"kind": "NESTED"}', nested)
    with sqlite3.connect(tmp_path / "index.db") as db:
        changed = db.execute(
            "UPDATE atdata_records SET value = ? WHERE kind = 'schema'", (text,)
        ).rowcount
    assert changed == 1
    with Index(home=tmp_path) as index:
        with pytest.raises(AtdataIndexError):
            index.list_schemas()
        with pytest.raises(AtdataError):
            index.get_schema(ref)


def test_a_server_answering_deeply_nested_json_is_an_atmosphere_error(tmp_path: Path) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    (tmp_path / "deep.json").write_bytes(deep)
    reader = HttpReader(timeout=10)
    try:
        with serve_directory(tmp_path) as server:
            with pytest.raises(AtmosphereError, match="not JSON"):
                reader.get_json(
                    f"http://127.0.0.1:{server.port}/deep.json", max_bytes=1 << 20, what="test"
                )
    finally:
        reader.close()
    assert error_summary(500, deep)[0] is None
