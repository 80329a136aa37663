"""Sample types: ``@packable``, the ``PackableSample`` base, ``DictSample`` and the field types."""

import dataclasses
import pickle
from typing import Annotated, Any, Optional

import numpy as np
import pytest

import atdata
from atdata import DictSample, NDArray, PackableSample, SchemaError, Shape
from atdata.codec import codec_for
from atdata.schema import FieldType, Schema
from exact import same


@atdata.packable
class Point:
    """A point with a label."""

    x: int
    y: int
    label: str = "origin"

    def norm2(self) -> int:
        return self.x * self.x + self.y * self.y


class Vector(PackableSample):
    values: NDArray[np.float32]
    name: str | None = None


@atdata.packable
class Inner:
    vec: Annotated[NDArray[np.float32], Shape(4)]
    tag: str


@atdata.packable
class Everything:
    text: str
    count: int
    ratio: float
    flag: bool
    blob: bytes
    maybe_count: int | None
    maybe_text: Optional[str]  # noqa: UP045 - the typing spelling must work too
    words: list[str]
    grid: list[list[int]]
    scores: dict[str, float]
    inner: Inner
    inners: list[Inner]
    by_name: dict[str, Inner]
    any_array: NDArray
    typed_array: NDArray[np.float32]
    plain_array: np.ndarray
    image: Annotated[NDArray[np.uint8], Shape(2, 3, 3)]
    wild: Annotated[NDArray[np.int64], Shape(None, 2)]
    maybe_array: NDArray[np.float64] | None
    arrays: dict[str, NDArray[np.int16]]
    anything: Any


def _everything(seed: int = 0) -> Everything:
    rng = np.random.default_rng(seed)
    return Everything(
        text="héllo wörld ✓",
        count=-(2**62),
        ratio=0.25,
        flag=True,
        blob=b"\x00\xff\x93NUMPY",
        maybe_count=None,
        maybe_text="here",
        words=["a", "", "ü"],
        grid=[[1, 2], [], [3]],
        scores={"a": 1.5, "b": -2.0},
        inner=Inner(np.arange(4, dtype=np.float32), "one"),
        inners=[Inner(np.ones(4, np.float32), "two"), Inner(np.zeros(4, np.float32), "three")],
        by_name={"k": Inner(np.full(4, 7, np.float32), "four")},
        any_array=rng.integers(0, 100, size=(3, 2)).astype(">i4"),
        typed_array=rng.random(5).astype(np.float32),
        plain_array=np.array([True, False]),
        image=rng.integers(0, 255, size=(2, 3, 3), dtype=np.uint8),
        wild=np.arange(10, dtype=np.int64).reshape(5, 2),
        maybe_array=None,
        arrays={"p": np.array([1, -1], np.int16), "q": np.zeros((0,), np.int16)},
        anything={"free": [1, "two", None]},
    )


# ------------------------------------------------------------------------------ @packable
def test_packable_makes_a_dataclass_subclass_of_packable_sample() -> None:
    assert dataclasses.is_dataclass(Point)
    assert issubclass(Point, PackableSample)
    assert Point.__name__ == "Point"
    assert Point.__module__ == __name__
    assert Point.__doc__ == "A point with a label."
    p = Point(3, 4)
    assert (p.x, p.y, p.label) == (3, 4, "origin")
    assert p.norm2() == 25
    assert Point(x=1, y=2, label="a") == Point(1, 2, "a")
    assert [f.name for f in dataclasses.fields(Point)] == ["x", "y", "label"]


def test_packable_on_a_packable_sample_subclass_is_the_identity() -> None:
    assert atdata.packable(Vector) is Vector


def test_packable_sample_base_class_makes_subclasses_dataclasses() -> None:
    assert dataclasses.is_dataclass(Vector)
    v = Vector(np.arange(3, dtype=np.float32))
    assert v.name is None
    back = Vector.from_bytes(v.to_bytes())
    assert type(back) is Vector
    assert same(back.values, v.values)
    assert back.name is None


def test_to_bytes_from_bytes_round_trip() -> None:
    p = Point(-7, 2**40, "ünï")
    body = p.to_bytes()
    assert isinstance(body, bytes)
    assert Point.from_bytes(body) == p
    assert Point.from_bytes(memoryview(body)) == p


def test_defaults_fill_fields_missing_from_the_stored_map() -> None:
    import msgpack

    body = msgpack.packb({"x": 1, "y": 2}, use_bin_type=True)
    assert Point.from_bytes(body) == Point(1, 2, "origin")


def test_schema_describes_every_field_kind() -> None:
    schema = Schema.from_type(Everything)
    kinds = {f.name: f.type for f in schema.fields}
    assert kinds["text"] == FieldType("str")
    assert kinds["count"] == FieldType("int")
    assert kinds["ratio"] == FieldType("float")
    assert kinds["flag"] == FieldType("bool")
    assert kinds["blob"] == FieldType("bytes")
    assert kinds["maybe_count"] == FieldType("int", optional=True)
    assert kinds["maybe_text"] == FieldType("str", optional=True)
    assert kinds["words"] == FieldType("list", item=FieldType("str"))
    assert kinds["grid"] == FieldType("list", item=FieldType("list", item=FieldType("int")))
    assert kinds["scores"] == FieldType("dict", item=FieldType("float"))
    assert kinds["inner"].kind == "sample"
    assert kinds["inner"].schema == Schema.from_type(Inner)
    assert kinds["inners"].kind == "list" and kinds["inners"].item.kind == "sample"
    assert kinds["by_name"].kind == "dict" and kinds["by_name"].item.kind == "sample"
    assert kinds["any_array"] == FieldType("array")
    assert kinds["typed_array"] == FieldType("array", dtype="<f4")
    assert kinds["plain_array"] == FieldType("array")
    assert kinds["image"] == FieldType("array", dtype="|u1", shape=(2, 3, 3))
    assert kinds["wild"] == FieldType("array", dtype="<i8", shape=(None, 2))
    assert kinds["maybe_array"] == FieldType("array", optional=True, dtype="<f8")
    assert kinds["arrays"] == FieldType("dict", item=FieldType("array", dtype="<i2"))
    assert kinds["anything"] == FieldType("any")
    assert [f.required for f in Schema.from_type(Point).fields] == [True, True, False]


def test_every_field_type_round_trips() -> None:
    sample = _everything()
    back = Everything.from_bytes(sample.to_bytes())
    assert same(back, sample)
    assert type(back.inner) is Inner
    assert all(type(i) is Inner for i in back.inners)
    assert type(back.by_name["k"]) is Inner


def test_optional_array_holds_an_array_too() -> None:
    sample = dataclasses.replace(_everything(), maybe_array=np.linspace(0, 1, 3))
    back = Everything.from_bytes(sample.to_bytes())
    assert same(back.maybe_array, sample.maybe_array)


def test_codec_is_built_once_per_type() -> None:
    assert codec_for(Everything) is codec_for(Everything)
    assert codec_for(Point) is not codec_for(Everything)


def test_schema_record_rebuilds_a_working_type() -> None:
    schema = Schema.from_type(Everything)
    rebuilt_schema = Schema.from_dict(schema.to_dict())
    assert rebuilt_schema.same_fields(schema)
    Rebuilt = rebuilt_schema.to_sample_type()
    sample = _everything(1)
    back = codec_for(Rebuilt).decode(sample.to_bytes())
    assert type(back).__name__ == "Everything"
    assert same(back.image, sample.image)
    assert back.text == sample.text
    assert back.inner.tag == "one"
    # and it encodes to the same bytes as the original type
    assert codec_for(Rebuilt).encode(back) == sample.to_bytes()


# ------------------------------------------------------------------------------ unsupported
@pytest.mark.parametrize(
    "annotation",
    [
        set[int],
        int | str,
        Optional[int | str],  # noqa: UP045
        dict[int, str],
        tuple[int, int],
        complex,
        object,
        Annotated[int, Shape(3)],
        list[set[int]],
        dict[str, frozenset[int]],
    ],
    ids=repr,
)
def test_unsupported_annotations_raise_schema_error(annotation: Any) -> None:
    namespace = {"__annotations__": {"bad": annotation}, "__module__": __name__}
    cls = type("Bad", (), namespace)
    with pytest.raises(SchemaError) as info:
        atdata.packable(cls)
    assert info.value.path.startswith("$.bad")
    assert "bad" in str(info.value)


def test_shape_rejects_negative_dimensions() -> None:
    with pytest.raises(ValueError):
        Shape(-1, 3)
    assert Shape(None, 3).dims == (None, 3)


def test_object_dtype_annotation_is_refused() -> None:
    namespace = {
        "__annotations__": {"objs": NDArray[np.object_]},
        "__module__": __name__,
    }
    with pytest.raises(SchemaError) as info:
        atdata.packable(type("Objs", (), namespace))
    assert info.value.path == "$.objs"


# ------------------------------------------------------------------------------ pickling
def test_packable_instances_pickle() -> None:
    p = Point(1, 2, "p")
    assert pickle.loads(pickle.dumps(p)) == p
    # native byte order: numpy's own pickling normalises big-endian arrays
    sample = dataclasses.replace(_everything(2), any_array=np.arange(6).reshape(3, 2))
    back = pickle.loads(pickle.dumps(sample))
    assert type(back) is Everything
    assert same(back, sample)


def test_packable_types_pickle_by_reference() -> None:
    assert pickle.loads(pickle.dumps(Point)) is Point
    assert pickle.loads(pickle.dumps(Vector)) is Vector


# ------------------------------------------------------------------------------ DictSample
def test_dict_sample_attribute_and_item_access() -> None:
    d = DictSample({"a": 1, "b": b"raw"}, c=[1, 2])
    assert d.a == 1 and d["a"] == 1
    assert d.b == b"raw" and d["b"] == b"raw"
    assert d.c == [1, 2]
    assert list(d.keys()) == ["a", "b", "c"]
    assert len(d) == 3
    assert "a" in d and "z" not in d
    assert dict(d.items()) == {"a": 1, "b": b"raw", "c": [1, 2]}
    assert d == DictSample(a=1, b=b"raw", c=[1, 2])
    assert d != DictSample(a=2, b=b"raw", c=[1, 2])


def test_dict_sample_missing_fields_raise_naming_the_field() -> None:
    d = DictSample(a=1)
    with pytest.raises(AttributeError, match="'nope'"):
        _ = d.nope
    with pytest.raises(KeyError):
        _ = d["nope"]
    assert d.get("nope") is None


def test_dict_sample_to_dict_is_a_copy() -> None:
    d = DictSample(a=1)
    out = d.to_dict()
    assert out == {"a": 1} and type(out) is dict
    out["a"] = 2
    out["b"] = 3
    assert d.a == 1 and "b" not in d


def test_dict_sample_is_read_only() -> None:
    d = DictSample(a=1)
    with pytest.raises(AttributeError, match="read-only"):
        d.a = 2
    with pytest.raises(AttributeError):
        d.new = 2
    with pytest.raises(TypeError):
        d["a"] = 2  # type: ignore[index]
    assert d.a == 1
    with pytest.raises(TypeError):
        hash(d)


def test_dict_sample_pickles() -> None:
    d = DictSample(a=1, arr=b"\x00")
    assert pickle.loads(pickle.dumps(d)) == d
