"""The codec: property-based round trips, and SchemaErrors that name the offending field path."""

import io
import struct
from typing import Annotated, Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import atdata
from atdata import NDArray, SchemaError, Shape
from atdata.codec import codec_for, decode_array, encode_array
from exact import same

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None)

DTYPES = [
    "|b1",
    "|i1",
    "<i2",
    "<i4",
    "<i8",
    "|u1",
    "<u2",
    "<u4",
    "<u8",
    "<f2",
    "<f4",
    "<f8",
    "<c8",
    "<c16",
    ">i4",
    ">f8",
    "<U3",
    "|S4",
    "<M8[s]",
    "<m8[ms]",
]


@atdata.packable
class AnyArray:
    arr: NDArray


@atdata.packable
class Scalars:
    text: str
    number: int
    real: float
    flag: bool
    raw: bytes
    maybe_number: int | None
    maybe_text: str | None
    maybe_vec: NDArray[np.float32] | None
    words: list[str]
    counts: dict[str, int]


@atdata.packable
class Inner:
    vec: Annotated[NDArray[np.float32], Shape(4)]
    label: str


@atdata.packable
class Nested:
    inner: Inner
    inners: list[Inner]
    by_name: dict[str, Inner]
    maybe: Inner | None


@atdata.packable
class Image:
    image: Annotated[NDArray[np.uint8], Shape(2, 3)]
    label: int


# ------------------------------------------------------------------------------ strategies
def _arrays(dtype: Any = None) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(
        dtype=st.sampled_from(DTYPES) if dtype is None else dtype,
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
    )


big_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
floats = st.floats(allow_nan=True, allow_infinity=True)
vec4 = hnp.arrays(np.float32, (4,), elements=st.floats(width=32, allow_nan=False))

scalars = st.builds(
    Scalars,
    text=st.text(),
    number=big_ints,
    real=floats,
    flag=st.booleans(),
    raw=st.binary(),
    maybe_number=st.none() | big_ints,
    maybe_text=st.none() | st.text(),
    maybe_vec=st.none() | _arrays(np.float32),
    words=st.lists(st.text(), max_size=5),
    counts=st.dictionaries(st.text(), big_ints, max_size=5),
)
inners = st.builds(Inner, vec=vec4, label=st.text(max_size=10))
nested = st.builds(
    Nested,
    inner=inners,
    inners=st.lists(inners, max_size=3),
    by_name=st.dictionaries(st.text(max_size=5), inners, max_size=3),
    maybe=st.none() | inners,
)


# ------------------------------------------------------------------------------ round trips
@SETTINGS
@given(arr=_arrays())
def test_arrays_of_any_dtype_and_shape_round_trip(arr: np.ndarray) -> None:
    body = AnyArray(arr).to_bytes()
    back = AnyArray.from_bytes(body)
    assert same(back.arr, arr)
    assert same(AnyArray.from_bytes(memoryview(body)).arr, arr)


@SETTINGS
@given(arr=_arrays())
def test_compact_layout_is_exactly_the_documented_bytes(arr: np.ndarray) -> None:
    encoded = encode_array(arr)
    dstr = arr.dtype.str.encode("ascii")
    expected = (
        bytes([len(dstr)])
        + dstr
        + bytes([arr.ndim])
        + struct.pack(f"<{arr.ndim}q", *arr.shape)
        + np.ascontiguousarray(arr).tobytes()
    )
    assert encoded == expected
    assert same(decode_array(encoded), arr)


@SETTINGS
@given(sample=scalars)
def test_scalars_strings_big_ints_and_optionals_round_trip(sample: Scalars) -> None:
    body = sample.to_bytes()
    back = Scalars.from_bytes(body)
    assert same(back, sample)
    assert body == sample.to_bytes()  # deterministic bytes


@SETTINGS
@given(sample=nested)
def test_nested_samples_round_trip(sample: Nested) -> None:
    back = Nested.from_bytes(sample.to_bytes())
    assert same(back, sample)
    assert type(back.inner) is Inner
    assert all(type(i) is Inner for i in back.inners)


@SETTINGS
@given(arr=_arrays(np.float32), pad=st.integers(min_value=0, max_value=3))
def test_large_bodies_decode_like_small_ones(arr: np.ndarray, pad: int) -> None:
    # bodies of 64 KiB and more take the zero-copy path; results must not differ
    big = np.zeros(16_384 + pad, np.float32)
    sample = Scalars("t", 1, 0.5, False, b"x" * 70_000, None, None, big, ["w"], {"k": 2})
    back = Scalars.from_bytes(sample.to_bytes())
    assert same(back, sample)
    small = AnyArray(arr)
    assert same(AnyArray.from_bytes(small.to_bytes()), small)


def test_zero_d_and_empty_arrays_round_trip() -> None:
    for arr in (
        np.array(3.5, np.float64),
        np.zeros((0,), np.float32),
        np.zeros((3, 0, 2), np.int16),
        np.array("x", dtype="<U1"),
    ):
        back = AnyArray.from_bytes(AnyArray(arr).to_bytes()).arr
        assert same(back, arr)


def test_integers_beyond_msgpack_range_are_refused() -> None:
    for value in (2**64, -(2**63) - 1):
        with pytest.raises(SchemaError):
            Scalars("t", value, 0.0, True, b"", None, None, None, [], {}).to_bytes()


# ------------------------------------------------------------------------------ .npy payloads
def _npy(arr: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


@SETTINGS
@given(arr=_arrays(st.sampled_from(["<f4", "<i8", "|u1", ">f8", "<c8"])))
def test_npy_payloads_decode(arr: np.ndarray) -> None:
    body = msgpack.packb({"arr": _npy(arr)}, use_bin_type=True)
    assert same(AnyArray.from_bytes(body).arr, arr)


def test_fortran_order_npy_decodes_to_the_same_values() -> None:
    arr = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    back = decode_array(_npy(arr))
    assert back.shape == (3, 4) and np.array_equal(back, arr)


def test_npy_payload_is_checked_against_the_declared_dtype_and_shape() -> None:
    body = msgpack.packb({"image": _npy(np.zeros((2, 3), np.float32)), "label": 1})
    with pytest.raises(SchemaError) as info:
        Image.from_bytes(body)
    assert info.value.path == "$.image"
    ok = msgpack.packb({"image": _npy(np.ones((2, 3), np.uint8)), "label": 1})
    assert np.array_equal(Image.from_bytes(ok).image, np.ones((2, 3), np.uint8))


def test_object_npy_is_refused_never_unpickled() -> None:
    payload = _npy(np.array([1, "a", None], dtype=object), allow_pickle=True)
    with pytest.raises(SchemaError) as info:
        AnyArray.from_bytes(msgpack.packb({"arr": payload}))
    assert info.value.path == "$.arr"
    with pytest.raises(SchemaError):
        decode_array(payload)


def test_npy_header_claiming_a_huge_array_fails_without_allocating() -> None:
    import tracemalloc

    for claimed in (2**30, 2**50):
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<f8", "fortran_order": False, "shape": (claimed,)}
        )
        payload = header.getvalue() + bytes(64)
        tracemalloc.start()
        try:
            with pytest.raises(SchemaError) as info:
                AnyArray.from_bytes(msgpack.packb({"arr": payload}))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert info.value.path == "$.arr"
        assert peak < 16 << 20, f"decoding allocated {peak} bytes for a {claimed}-element claim"


def test_truncated_npy_is_a_schema_error() -> None:
    payload = _npy(np.arange(10, dtype=np.int32))
    for cut in (8, 20, len(payload) - 4):
        with pytest.raises(SchemaError):
            decode_array(payload[:cut])


# ------------------------------------------------------------------------------ write errors
def test_wrong_dtype_on_write_names_the_field() -> None:
    with pytest.raises(SchemaError) as info:
        Image(np.zeros((2, 3), np.float32), 1).to_bytes()
    assert info.value.path == "$.image"
    assert "$.image" in str(info.value) and "|u1" in str(info.value)


def test_wrong_shape_on_write_names_the_field() -> None:
    with pytest.raises(SchemaError) as info:
        Image(np.zeros((3, 2), np.uint8), 1).to_bytes()
    assert info.value.path == "$.image"
    assert "(2, 3)" in str(info.value)


@pytest.mark.parametrize(
    ("sample", "path"),
    [
        (
            Nested(Inner(np.zeros(3, np.float32), "a"), [], {}, None),
            "$.inner.vec",
        ),
        (
            Nested(
                Inner(np.zeros(4, np.float32), "a"), [Inner(np.zeros(4, np.float64), "b")], {}, None
            ),
            "$.inners[0].vec",
        ),
        (
            Nested(
                Inner(np.zeros(4, np.float32), "a"),
                [],
                {"k": Inner(np.zeros((4, 1), np.float32), "b")},
                None,
            ),
            "$.by_name.k.vec",
        ),
        (
            Nested(Inner(np.zeros(4, np.float32), "a"), [], {}, Inner(np.zeros(4, np.float32), 5)),
            "$.maybe.label",
        ),
    ],
    ids=["inner", "list", "dict", "optional"],
)
def test_nested_write_errors_name_the_nested_path(sample: Nested, path: str) -> None:
    with pytest.raises(SchemaError) as info:
        sample.to_bytes()
    assert info.value.path == path
    assert path in str(info.value)


def test_object_arrays_are_refused_on_write() -> None:
    with pytest.raises(SchemaError) as info:
        AnyArray(np.array([1, "two", None], dtype=object)).to_bytes()
    assert info.value.path == "$.arr"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("text", 5),
        ("number", "5"),
        ("number", 1.5),
        ("flag", "yes"),
        ("raw", "not bytes"),
        ("words", "not a list"),
        ("counts", {1: 2}),
        ("counts", {"a": "b"}),
        ("maybe_vec", [1.0, 2.0]),
    ],
)
def test_wrong_python_types_on_write_name_the_field(field: str, value: Any) -> None:
    sample = Scalars("t", 1, 0.5, True, b"", None, None, None, [], {})
    setattr(sample, field, value)
    with pytest.raises(SchemaError) as info:
        sample.to_bytes()
    assert info.value.path.startswith(f"$.{field}")


def test_missing_attribute_on_write_names_the_field() -> None:
    sample = Image(np.zeros((2, 3), np.uint8), 1)
    del sample.__dict__["label"]
    with pytest.raises(SchemaError) as info:
        sample.to_bytes()
    assert info.value.path == "$.label"


# ------------------------------------------------------------------------------ read errors
def _body(**values: Any) -> bytes:
    return msgpack.packb(values, use_bin_type=True)


def test_wrong_dtype_on_read_names_the_field() -> None:
    body = _body(image=encode_array(np.zeros((2, 3), np.int16)), label=1)
    with pytest.raises(SchemaError) as info:
        Image.from_bytes(body)
    assert info.value.path == "$.image"
    assert "$.image" in str(info.value)


def test_wrong_shape_on_read_names_the_field() -> None:
    body = _body(image=encode_array(np.zeros((2, 4), np.uint8)), label=1)
    with pytest.raises(SchemaError) as info:
        Image.from_bytes(body)
    assert info.value.path == "$.image"


def test_nested_read_errors_name_the_nested_path() -> None:
    good_inner = {"vec": encode_array(np.zeros(4, np.float32)), "label": "a"}
    bad_inner = {"vec": encode_array(np.zeros(4, np.float64)), "label": "a"}
    cases = {
        "$.inner.vec": _body(inner=bad_inner, inners=[], by_name={}, maybe=None),
        "$.inners[1].vec": _body(
            inner=good_inner, inners=[good_inner, bad_inner], by_name={}, maybe=None
        ),
        "$.by_name.z.vec": _body(inner=good_inner, inners=[], by_name={"z": bad_inner}, maybe=None),
        "$.maybe.vec": _body(inner=good_inner, inners=[], by_name={}, maybe=bad_inner),
        "$.inner.label": _body(
            inner={"vec": good_inner["vec"], "label": 3}, inners=[], by_name={}, maybe=None
        ),
    }
    for path, body in cases.items():
        with pytest.raises(SchemaError) as info:
            Nested.from_bytes(body)
        assert info.value.path == path, path


def test_array_header_disagreeing_with_byte_count_is_refused() -> None:
    good = encode_array(np.zeros((2, 3), np.uint8))
    for value in (good[:-1], good + b"\x00", good[:5]):
        with pytest.raises(SchemaError) as info:
            Image.from_bytes(_body(image=value, label=1))
        assert info.value.path == "$.image"


@pytest.mark.parametrize(
    "body",
    [
        msgpack.packb([1, 2, 3]),
        msgpack.packb("a string"),
        msgpack.packb(None),
        b"",
        b"\xc1",
        b"\x82\xa1a",  # map promising more than it holds
        msgpack.packb({1: 2}),
    ],
    ids=["list", "str", "nil", "empty", "reserved-byte", "truncated-map", "int-keys"],
)
def test_a_body_that_is_not_a_map_is_a_schema_error(body: bytes) -> None:
    with pytest.raises(SchemaError):
        Image.from_bytes(body)


def test_missing_fields_on_read_name_the_field() -> None:
    with pytest.raises(SchemaError) as info:
        Image.from_bytes(_body(label=1))
    assert info.value.path == "$.image"
    with pytest.raises(SchemaError) as info:
        Nested.from_bytes(_body(inner={"label": "x"}, inners=[], by_name={}))
    assert info.value.path == "$.inner.vec"


def test_optional_fields_may_be_absent_on_read() -> None:
    body = _body(
        text="t", number=1, real=1.0, flag=False, raw=b"", words=[], counts={}
    )  # no maybe_* keys at all
    back = Scalars.from_bytes(body)
    assert (back.maybe_number, back.maybe_text, back.maybe_vec) == (None, None, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("text", 1),
        ("text", b"bytes"),
        ("number", "1"),
        ("number", 1.0),
        ("number", True),
        ("real", "1.0"),
        ("flag", 1),
        ("raw", "str"),
        ("maybe_vec", 5),
        ("words", {"a": 1}),
        ("words", ["a", 1]),
        ("counts", [1]),
        ("counts", {"a": "b"}),
        ("maybe_number", "x"),
    ],
)
def test_wrong_scalar_types_on_read_name_the_field(field: str, value: Any) -> None:
    good: dict[str, Any] = {
        "text": "t",
        "number": 1,
        "real": 1.0,
        "flag": True,
        "raw": b"",
        "maybe_number": None,
        "maybe_text": None,
        "maybe_vec": None,
        "words": [],
        "counts": {},
    }
    good[field] = value
    with pytest.raises(SchemaError) as info:
        Scalars.from_bytes(_body(**good))
    assert info.value.path.startswith(f"$.{field}")


def test_schema_errors_are_atdata_errors() -> None:
    with pytest.raises(atdata.AtdataError):
        Image.from_bytes(b"\xc1")
    assert issubclass(SchemaError, atdata.AtdataError)
    assert (
        codec_for(Image).decode(_body(image=encode_array(np.ones((2, 3), np.uint8)), label=3)).label
        == 3
    )


def test_structured_arrays_are_refused_on_write_rather_than_losing_field_names():
    from atdata.codec import encode_array

    rec = np.zeros(3, dtype=[("x", "<f4"), ("y", "<i4")])
    with pytest.raises(SchemaError, match="structured"):
        encode_array(rec)
