"""``from_hf``: write a Hugging Face dataset to shards, as files or as a named index dataset.

Rows stream from the HF dataset (an ``IterableDataset`` is never materialised) through a
converter per column into samples, and on into the shard writer, which rolls over every
``maxcount`` samples: memory stays bounded by one shard's indexed fields.
"""

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol, TypeVar, overload

import numpy as np

from ..errors import InvalidArgumentError, SchemaError
from ..media.image import Image
from ..schema import FieldType, Schema
from ..writing import WrittenDataset, write_samples
from ._progress import counted
from .features import hf, schema_of_features

__all__ = ["SupportsWrite", "from_hf"]

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class SupportsWrite(Protocol[R_co]):
    """What :func:`from_hf` writes into: an :class:`atdata.Index` (its ``write`` method)."""

    def write(
        self, samples: Iterable[Any], name: str, *, maxcount: int = ..., maxsize: int | None = ...
    ) -> R_co: ...


@overload
def from_hf(
    hf_dataset: Any,
    path: str | os.PathLike[str],
    *,
    sample_type: type | None = ...,
    type_name: str = ...,
    maxcount: int = ...,
    maxsize: int | None = ...,
    progress: bool = ...,
) -> WrittenDataset[Any]: ...


@overload
def from_hf(
    hf_dataset: Any,
    *,
    index: SupportsWrite[R],
    name: str,
    sample_type: type | None = ...,
    type_name: str = ...,
    maxcount: int = ...,
    maxsize: int | None = ...,
    progress: bool = ...,
) -> R: ...


def from_hf(
    hf_dataset: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    index: SupportsWrite[Any] | None = None,
    name: str | None = None,
    sample_type: type | None = None,
    type_name: str = "HFSample",
    maxcount: int = 10_000,
    maxsize: int | None = None,
    progress: bool = True,
) -> Any:
    """Write a Hugging Face ``Dataset``/``IterableDataset`` as shards; see :func:`atdata.from_hf`."""
    datasets = hf()
    if not isinstance(hf_dataset, datasets.Dataset | datasets.IterableDataset):
        raise InvalidArgumentError(
            "from_hf takes a datasets.Dataset or datasets.IterableDataset (one split: "
            f"pick it from a DatasetDict with ['train']), got {type(hf_dataset).__name__}"
        )
    if (path is None) == (index is None) or (index is not None and not name):
        raise InvalidArgumentError("from_hf writes to a path, or to index= under name=; not both")
    features = hf_dataset.features
    if features is None:
        raise SchemaError(
            "this IterableDataset does not know its features; resolve them first "
            "(hf_dataset._resolve_features()) or give them when it is made"
        )
    schema = (
        Schema.from_type(sample_type) if sample_type else schema_of_features(features, type_name)
    )
    target = sample_type or schema.to_sample_type()
    convert = _converter(schema, target, features)
    total = hf_dataset.num_rows if isinstance(hf_dataset, datasets.Dataset) else None
    rows = _rows(hf_dataset, features)
    samples = (convert(row, i) for i, row in enumerate(rows))
    with counted(samples, total, enabled=progress) as stream:
        if index is not None:
            return index.write(stream, str(name), maxcount=maxcount, maxsize=maxsize)
        assert path is not None
        return write_samples(stream, _shard_path(path), maxcount=maxcount, maxsize=maxsize)


def _shard_path(path: str | os.PathLike[str]) -> str:
    """A directory (existing, or named with a trailing ``/``) gets ``data-%06d.tar`` in it."""
    text = os.fspath(path)
    if text.endswith(("/", os.sep)) or os.path.isdir(text):
        os.makedirs(text, exist_ok=True)
        return os.path.join(text, "data-%06d.tar")
    return text


def _rows(hf_dataset: Any, features: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Rows in Python form with images undecoded (their encoded bytes). Not numpy form: it
    turns binary values into ``numpy.bytes_``, which drops trailing NUL bytes."""
    datasets = hf()
    for column, feature in features.items():
        if isinstance(feature, datasets.Image) and feature.decode:
            hf_dataset = hf_dataset.cast_column(column, datasets.Image(decode=False))
    return iter(hf_dataset.with_format(None))


def _converter(
    schema: Schema, target: type, features: Mapping[str, Any]
) -> Callable[[Mapping[str, Any], int], Any]:
    missing = [f.name for f in schema.fields if f.required and f.name not in features]
    extra = [c for c in features if c not in {f.name for f in schema.fields}]
    if missing or extra:
        raise SchemaError(
            f"the columns {sorted(features)} do not match the fields of {schema.name} "
            f"(missing: {missing}, not in the type: {extra}); rename or remove columns first"
        )
    cells = [(f.name, _cell(f.type, f"$.{f.name}")) for f in schema.fields if f.name in features]

    def convert(row: Mapping[str, Any], i: int) -> Any:
        values = {}
        for column, cell in cells:
            try:
                values[column] = cell(row[column])
            except (TypeError, ValueError, SchemaError) as exc:
                raise SchemaError(f"row {i}, column {column!r}: {exc}", path=f"$.{column}") from exc
        return target(**values)

    return convert


def _cell(t: FieldType, path: str) -> Callable[[Any], Any]:
    """The converter of one column's values into the field's type."""
    plain: Callable[[Any], Any]
    if t.kind == "array":
        plain = _array_cell(t)
    elif t.kind == "image":
        plain = _image_value
    elif t.kind == "list" and t.item is not None:
        item = _cell(t.item, path + "[]")
        plain = lambda v: [item(x) for x in v]  # noqa: E731
    elif t.kind in ("int", "float", "bool", "str", "bytes"):
        plain = {"int": int, "float": float, "bool": bool, "str": str, "bytes": bytes}[t.kind]
    else:
        raise SchemaError(f"from_hf cannot fill field {path[2:]!r} ({t.describe()})", path=path)

    def cell(value: Any) -> Any:
        if value is None:
            if t.optional:
                return None
            raise SchemaError("the value is missing (None) but the field is not optional")
        return plain(value)

    return cell


def _array_cell(t: FieldType) -> Callable[[Any], np.ndarray[Any, Any]]:
    dtype = np.dtype(t.dtype) if t.dtype is not None else None
    shape = t.shape

    def array(value: Any) -> np.ndarray[Any, Any]:
        out = np.asarray(value, dtype=dtype)
        if out.dtype == object:
            raise SchemaError("the nested lists are ragged (not an n-dimensional array)")
        if shape is not None and (
            out.ndim != len(shape)
            or any(d is not None and d != n for d, n in zip(shape, out.shape, strict=True))
        ):
            raise SchemaError(f"array of shape {out.shape} does not fit the declared {shape}")
        return out

    return array


def _image_value(value: Any) -> Image:
    if isinstance(value, Mapping):
        data = value.get("bytes")
        if data is None and value.get("path"):
            with open(value["path"], "rb") as fh:  # a local file the HF dataset refers to
                data = fh.read()
        if data is None:
            raise SchemaError("the image has neither bytes nor a readable path")
        return Image(data)
    if isinstance(value, bytes | bytearray | memoryview):
        return Image(value)
    raise SchemaError(f"expected an encoded image, got {type(value).__name__}")
