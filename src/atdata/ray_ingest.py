"""Ray Data in: :func:`from_ray` writes a ``ray.data.Dataset`` as typed samples (needs
``atdata[ray]``; the way out is ``Dataset.to_ray()``).

Each row becomes a sample of the given type (values converted field by field following its
schema: numpy scalars to Python ones, arrays to the declared dtype, bytes to images where the
field is one) and the samples are written like any others, to shard files or as a new version
of a named index dataset. Rows are pulled through the driver (``iter_rows``), so memory stays
bounded by Ray's streaming window and one shard's index.
"""

import os
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

import numpy as np

from ._optional import require
from .errors import InvalidArgumentError, SchemaError
from .media.image import Image
from .schema import FieldType, Schema
from .writing import WrittenDataset, write_samples

__all__ = ["from_ray"]

R_co = TypeVar("R_co", covariant=True)


class _SupportsWrite(Protocol[R_co]):
    def write(
        self, samples: Iterable[Any], name: str, *, maxcount: int = ..., maxsize: int | None = ...
    ) -> R_co: ...


def from_ray(
    ray_dataset: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    index: _SupportsWrite[Any] | None = None,
    name: str | None = None,
    sample_type: type,
    maxcount: int = 10_000,
    maxsize: int | None = None,
) -> Any:
    """Write the rows of a ``ray.data.Dataset`` as samples of ``sample_type``: to shard files at
    ``path`` (a ``%06d`` pattern, or a directory), or with ``index=`` as a new version of the
    index dataset ``name`` (its schema recorded from ``sample_type``). Returns what the write
    returns (the index entry, or the written files).

    >>> # ray_ds = atdata.load_dataset(...).to_ray().map(my_preprocessing)
    >>> # entry = atdata.from_ray(ray_ds, index=index, name="clean", sample_type=Frame)
    """
    ray = require("ray", "ray")
    if not isinstance(ray_dataset, ray.data.Dataset):
        raise InvalidArgumentError(
            f"from_ray takes a ray.data.Dataset, got {type(ray_dataset).__name__}"
        )
    if (path is None) == (index is None) or (index is not None and not name):
        raise InvalidArgumentError("from_ray writes to a path, or to index= under name=; not both")
    schema = Schema.from_type(sample_type)
    convert = _converter(schema, sample_type)
    samples = (convert(row, n) for n, row in enumerate(ray_dataset.iter_rows()))
    if index is not None:
        return index.write(samples, str(name), maxcount=maxcount, maxsize=maxsize)
    assert path is not None
    return _write_files(samples, path, maxcount, maxsize)


def _write_files(
    samples: Iterable[Any], path: str | os.PathLike[str], maxcount: int, maxsize: int | None
) -> WrittenDataset[Any]:
    text = os.fspath(path)
    if text.endswith(("/", os.sep)) or os.path.isdir(text):
        os.makedirs(text, exist_ok=True)
        text = os.path.join(text, "data-%06d.tar")
    return write_samples(samples, text, maxcount=maxcount, maxsize=maxsize)


def _converter(schema: Schema, target: type) -> Callable[[Any, int], Any]:
    cells = [(f.name, f.required, _cell(f.type)) for f in schema.fields]

    def convert(row: Any, n: int) -> Any:
        values: dict[str, Any] = {}
        for field_name, required, cell in cells:
            if field_name not in row:
                if required:
                    raise SchemaError(
                        f"row {n} of the Ray dataset has no column {field_name!r} "
                        f"({schema.name} needs it); columns: {sorted(row)}"
                    )
                continue
            try:
                values[field_name] = cell(row[field_name])
            except (TypeError, ValueError) as exc:
                raise SchemaError(
                    f"row {n}, column {field_name!r}: cannot make a {schema.name} field: {exc}"
                ) from exc
        return target(**values)

    return convert


def _cell(t: FieldType) -> Callable[[Any], Any]:
    def cell(value: Any) -> Any:
        if value is None:
            return None
        if t.kind == "int":
            return int(value)
        if t.kind == "float":
            return float(value)
        if t.kind == "bool":
            return bool(value)
        if t.kind == "str":
            return str(value)
        if t.kind == "bytes":
            return bytes(value)
        if t.kind == "array":
            return np.asarray(value, dtype=t.dtype) if t.dtype else np.asarray(value)
        if t.kind == "image":
            return value if isinstance(value, Image) else Image(bytes(value))
        if isinstance(value, np.ndarray) and t.kind == "list":
            return value.tolist()
        return value

    return cell
