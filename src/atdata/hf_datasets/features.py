"""Schema <-> ``datasets.Features``: the one mapping both directions of the conversion use.

atdata -> HF: ``str``/``int``/``float``/``bool``/``bytes`` as ``Value("string"|"int64"|"float64"|
"bool"|"binary")``; an array of declared dtype as ``Array2D``..``Array5D`` when only its first
dimension may vary, else as (nested) ``List`` of ``Value(dtype)`` with the declared lengths; a 0-d
array as ``Value(dtype)``; ``atdata.Image`` as ``datasets.Image``; lists of those as ``List``.

HF -> atdata: the reverse, with every integer/float ``Value`` width read as a Python ``int``/``float``
field, ``ClassLabel`` as ``int``, and numeric or boolean ``List`` nests as arrays (their lengths as
the declared shape). Anything else (structs, audio, video, dict fields, nested samples) is a
:class:`SchemaError` naming the column.
"""

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .._optional import require
from ..errors import SchemaError
from ..media.spec import ImageSpec
from ..schema import Field, FieldType, Schema, validate_identifier

__all__ = ["hf", "features_of_schema", "schema_of_features"]

#: numpy dtype names ``datasets.Value`` stores as the same dtype
_NUMERIC = {
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
}
_SCALARS = {"str": "string", "int": "int64", "float": "float64", "bool": "bool", "bytes": "binary"}
_FROM_VALUE: dict[str, Any] = {
    "string": "str",
    "large_string": "str",
    "binary": "bytes",
    "large_binary": "bytes",
    "bool": "bool",
}


def hf() -> Any:
    """The ``datasets`` module, or ImportError naming the extra that installs it."""
    return require("datasets", "hf-datasets")


# -- atdata -> HF ---------------------------------------------------------------------------------
def features_of_schema(schema: Schema, first: Callable[[], Any] | None = None) -> Any:
    """The ``datasets.Features`` of ``schema``'s samples.

    ``first`` gives the first sample; it is called only when an array field declares no dtype or
    no shape, which are then read from that sample (every dimension variable).
    """
    datasets = hf()
    return datasets.Features(
        {f.name: _feature(f.type, f"$.{f.name}", f.name, first) for f in schema.fields}
    )


def _feature(t: FieldType, path: str, name: str, first: Callable[[], Any] | None) -> Any:
    datasets = hf()
    if t.kind in _SCALARS:
        return datasets.Value(_SCALARS[t.kind])
    if t.kind == "image":
        return datasets.Image()
    if t.kind == "array":
        dtype, shape = _declared_array(t, path, name, first)
        return array_feature(dtype, shape, path)
    if t.kind == "list" and t.item is not None and t.item.kind != "list":
        return datasets.List(_feature(t.item, path + "[]", name, None))
    raise SchemaError(
        f"field {path[2:]!r} ({t.describe()}) has no Hugging Face feature: supported are str, "
        "int, float, bool, bytes, arrays, atdata.Image and lists of those",
        path=path,
    )


def _declared_array(
    t: FieldType, path: str, name: str, first: Callable[[], Any] | None
) -> tuple[np.dtype[Any], tuple[int | None, ...]]:
    if t.dtype is not None and t.shape is not None:
        return np.dtype(t.dtype), t.shape
    sample = first() if first is not None else None
    if sample is None:
        raise SchemaError(
            f"array field {path[2:]!r} declares no dtype or shape and there is no sample to "
            "read them from; annotate it as Annotated[NDArray[np.float32], Shape(...)]",
            path=path,
        )
    value = np.asarray(getattr(sample, name))
    dtype = np.dtype(t.dtype) if t.dtype is not None else value.dtype
    shape = t.shape if t.shape is not None else (None,) * value.ndim
    return dtype, shape


def array_feature(dtype: np.dtype[Any], shape: tuple[int | None, ...], path: str) -> Any:
    """``ArrayND`` when only the first dimension may vary (2 to 5 dims), else nested ``List``."""
    datasets = hf()
    if dtype.name not in _NUMERIC:
        raise SchemaError(
            f"array field {path[2:]!r} has dtype {dtype}, which Hugging Face datasets cannot "
            f"store; supported: {', '.join(sorted(_NUMERIC))}",
            path=path,
        )
    if 2 <= len(shape) <= 5 and None not in shape[1:]:
        kind = getattr(datasets, f"Array{len(shape)}D")
        return kind(shape=tuple(shape), dtype=dtype.name)
    feature: Any = datasets.Value(dtype.name)
    for dim in reversed(shape):
        feature = datasets.List(feature, length=-1 if dim is None else dim)
    return feature


# -- HF -> atdata ---------------------------------------------------------------------------------
def schema_of_features(features: Mapping[str, Any], name: str = "HFSample") -> Schema:
    """The schema whose samples carry ``features`` (a ``datasets.Features``); SchemaError when a
    column has no atdata field type or is not a plain identifier."""
    validate_identifier(name, "sample type name")
    fields = []
    for column, feature in features.items():
        if not isinstance(column, str):
            raise SchemaError(f"column names must be strings, got {column!r}")
        try:
            validate_identifier(column, "field name")
        except SchemaError:
            raise SchemaError(
                f"column {column!r} cannot be a field name (letters, digits and _ only, not a "
                "keyword); rename it first: hf_dataset.rename_column(old, new)"
            ) from None
        fields.append(Field(column, field_type_of_feature(feature, f"$.{column}")))
    return Schema(name=name, fields=tuple(fields))


def field_type_of_feature(feature: Any, path: str) -> FieldType:
    """One column's field type (see the module docstring)."""
    datasets = hf()
    if isinstance(feature, datasets.Value):
        if feature.dtype in _FROM_VALUE:
            return FieldType(_FROM_VALUE[feature.dtype])
        if feature.dtype in _NUMERIC:
            return FieldType("float" if feature.dtype.startswith("float") else "int")
    elif isinstance(feature, datasets.ClassLabel):
        return FieldType("int")
    elif isinstance(feature, datasets.Image):
        return FieldType("image", media=ImageSpec())
    elif isinstance(feature, _array_kinds(datasets)):
        array: Any = feature
        return _array_type(array.dtype, tuple(array.shape), path)
    elif isinstance(feature, datasets.List | datasets.LargeList):
        dims, leaf = _list_nest(feature, datasets)
        if isinstance(leaf, datasets.Value) and leaf.dtype in _NUMERIC:
            return _array_type(leaf.dtype, dims, path)
        if len(dims) == 1 and not isinstance(leaf, datasets.List | datasets.LargeList):
            return FieldType("list", item=field_type_of_feature(leaf, path + "[]"))
    raise SchemaError(
        f"column {path[2:]!r} has feature {_describe(feature)}, which atdata cannot type: "
        "supported are Value (numbers, bool, string, binary), ClassLabel, Image, Array2D..5D "
        "and List of those; remove or cast the column, or give a sample_type",
        path=path,
    )


def _array_kinds(datasets: Any) -> tuple[type, ...]:
    return (datasets.Array2D, datasets.Array3D, datasets.Array4D, datasets.Array5D)


def _array_type(dtype: str, shape: tuple[int | None, ...], path: str) -> FieldType:
    if dtype not in _NUMERIC:
        raise SchemaError(f"column {path[2:]!r}: unsupported array dtype {dtype!r}", path=path)
    dims = tuple(None if d is None or d < 0 else int(d) for d in shape)
    return FieldType("array", dtype=np.dtype(dtype).str, shape=dims)


def _list_nest(feature: Any, datasets: Any) -> tuple[tuple[int | None, ...], Any]:
    """The lengths of a ``List`` nest (None: variable) and the feature at its bottom."""
    dims: list[int | None] = []
    while isinstance(feature, datasets.List | datasets.LargeList):
        length = getattr(feature, "length", -1)
        dims.append(None if length is None or length < 0 else int(length))
        feature = feature.feature
    return tuple(dims), feature


def _describe(feature: Any) -> str:
    text = repr(feature)
    return text if len(text) <= 120 else text[:117] + "..."
