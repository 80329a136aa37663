"""Publishing schemas as versioned records, the bump rule, and rebuilding types from them."""

import sys
from typing import Annotated

import numpy as np
import pytest
from index_types import Image
from numpy.typing import NDArray

import atdata
from atdata.errors import ConflictError, NotFoundError
from atdata.index import Index
from atdata.schema import Schema


def _schema(cls_name: str, fields: dict[str, object], **defaults: object) -> Schema:
    """The schema of a throwaway packable class with these annotations and defaults."""
    cls = type(cls_name, (), {"__annotations__": dict(fields), **defaults})
    return Schema.from_type(atdata.packable(cls))


def test_first_publication_is_1_0_0_and_stores_dtype_and_shape(index: Index) -> None:
    ref = index.add_schema(Image)
    assert ref == "atdata://local/schema/Image@1.0.0"
    record = index.get_schema(ref)
    assert (record.name, record.version) == ("Image", "1.0.0")
    assert record.cid.startswith("bafyrei")
    image = record.schema.field("image").type
    assert (image.kind, image.dtype, image.shape) == ("array", "|u1", (4, 4))
    assert index.get_schema("Image") == record == index.get_schema("Image@1.0.0")


def test_publishing_an_unchanged_schema_keeps_its_version(index: Index) -> None:
    first = index.add_schema(Image)
    assert index.add_schema(Image) == first
    assert index.add_schema(Schema.from_type(Image)) == first
    assert [r.version for r in index.list_schemas()] == ["1.0.0"]


@pytest.mark.parametrize(
    ("after", "defaults", "expected"),
    [
        ({"x": int, "name": str, "extra": int | None}, {"extra": None}, "1.1.0"),  # optional added
        ({"x": int, "name": str, "extra": int}, {"extra": 0}, "1.1.0"),  # with a default: optional
        ({"name": str, "x": int}, {}, "1.0.1"),  # same fields, other order
        ({"x": int, "name": str, "extra": int}, {}, "2.0.0"),  # required field added
        ({"x": int}, {}, "2.0.0"),  # field removed
        ({"x": float, "name": str}, {}, "2.0.0"),  # type changed
        ({"x": int | None, "name": str}, {}, "2.0.0"),  # a field's type made optional
        ({"x": int, "name": str}, {"name": ""}, "2.0.0"),  # requiredness changed
    ],
)
def test_the_bump_rule(
    index: Index, after: dict[str, object], defaults: dict[str, object], expected: str
) -> None:
    index.add_schema(_schema("P", {"x": int, "name": str}))
    ref = index.add_schema(_schema("P", after, **defaults))
    assert ref == f"atdata://local/schema/P@{expected}"


def test_bumps_accumulate_from_the_latest_version(index: Index) -> None:
    index.add_schema(_schema("C", {"x": int}))
    added = _schema("C", {"x": int, "y": int}, y=0)
    assert index.add_schema(added).endswith("C@1.1.0")
    reordered = Schema("C", tuple(reversed(added.fields)))
    assert index.add_schema(reordered).endswith("C@1.1.1")
    assert index.add_schema(_schema("C", {"y": int})).endswith("C@2.0.0")
    assert [r.version for r in index.schemas] == ["1.0.0", "1.1.0", "1.1.1", "2.0.0"]


def test_array_dtype_and_shape_changes_are_major(index: Index) -> None:
    index.add_schema(_schema("A", {"a": Annotated[NDArray[np.float32], atdata.Shape(3)]}))
    ref = index.add_schema(_schema("A", {"a": Annotated[NDArray[np.float32], atdata.Shape(4)]}))
    assert ref.endswith("A@2.0.0")
    ref = index.add_schema(_schema("A", {"a": Annotated[NDArray[np.float64], atdata.Shape(4)]}))
    assert ref.endswith("A@3.0.0")


def test_returning_to_an_earlier_schema_reuses_its_version(index: Index) -> None:
    one = index.add_schema(_schema("R", {"x": int}))
    two = index.add_schema(_schema("R", {"x": str}))
    assert index.add_schema(_schema("R", {"x": int})) == one
    assert index.get_schema("R").ref == two  # the latest is still 2.0.0


def test_docstrings_do_not_bump(index: Index) -> None:
    base = _schema("D", {"x": int})
    first = index.add_schema(base)
    documented = Schema(base.name, base.fields, description="now with words")
    assert index.add_schema(documented) == first


def test_explicit_versions_conflict_when_fields_differ(index: Index) -> None:
    assert index.add_schema(_schema("E", {"x": int}), version="3.1.4").endswith("E@3.1.4")
    assert index.add_schema(_schema("E", {"x": int}), version="3.1.4").endswith("E@3.1.4")
    with pytest.raises(ConflictError, match="different fields"):
        index.add_schema(_schema("E", {"x": str}), version="3.1.4")
    assert index.add_schema(_schema("E", {"x": str})).endswith("E@4.0.0")


def test_rebuilt_type_reads_the_data_without_the_original_class(index: Index) -> None:
    samples = [Image(image=np.full((4, 4), i, np.uint8), label=i) for i in range(6)]
    entry = index.write(samples, "images", maxcount=4)
    rebuilt = index.get_schema_type(entry.schema_ref or "")
    assert rebuilt is not Image and rebuilt.__name__ == "Image"
    assert index.get_schema_type("Image@1.0.0") is rebuilt  # one class per reference
    modules = set(sys.modules)
    got = list(atdata.Dataset(entry.urls, rebuilt).ordered())
    assert set(sys.modules) == modules  # nothing named by the record was imported
    assert [s.label for s in got] == list(range(6))
    assert got[3].image.dtype == np.uint8 and got[3].image.shape == (4, 4)
    assert int(got[3].image[0, 0]) == 3
    batch = next(iter(atdata.Dataset(entry.urls, rebuilt).ordered(batch_size=6)))
    assert batch.image.shape == (6, 4, 4)


def test_a_record_naming_a_module_imports_nothing(index: Index) -> None:
    """A malicious record cannot make get_schema_type import or run anything."""
    repo = index.repository()
    body = {
        "name": "Evil",
        "version": "1.0.0",
        "fields": [{"name": "x", "type": {"kind": "int"}, "required": True}],
        "module": "os",
        "__module__": "subprocess",
    }
    with repo.provider.transaction() as tx:
        tx.put(
            "schema",
            "Evil#1.0.0",
            {"name": "Evil", "version": "1.0.0", "cid": "x", "schema": body, "created_at": "now"},
        )
    cls = index.get_schema_type("Evil")
    assert cls.__module__ == "atdata.rebuilt"
    assert cls(x=1).x == 1  # type: ignore[call-arg]


def test_unknown_schemas_raise_not_found(index: Index) -> None:
    with pytest.raises(NotFoundError, match="no schema"):
        index.get_schema_type("Nothing")
    index.add_schema(Image)
    with pytest.raises(NotFoundError):
        index.get_schema("Image@9.9.9")
    with pytest.raises(ValueError):
        index.get_schema("Image@1.0")


def test_entry_and_schema_are_committed_together(index: Index) -> None:
    """A write whose entry cannot be recorded publishes no schema either."""
    from atdata.index import datasets as ds_ops

    repo = index.repository()
    with pytest.raises(ValueError), repo.provider.transaction() as tx:
        from atdata.index.schemas import add_schema_tx

        add_schema_tx(tx, Schema.from_type(Image), repo="local")
        raise ValueError("entry failed")
    assert index.list_schemas() == []
    assert ds_ops.get_entry(repo, "x", None) is None
