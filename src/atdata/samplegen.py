"""Deterministic samples of any packable type, generated from its schema (for tests).

``make_samples(T, n, seed)`` gives ``n`` samples whose every field follows ``T``'s schema: arrays
of the declared dtype and shape (``None`` dimensions get small random sizes), strings, ints,
floats, bools, bytes, lists, dicts, nested samples, and ``None`` for some optional values. The
same ``(T, n, seed)`` always gives equal samples.
"""

from typing import Any, TypeVar

import numpy as np

from .errors import InvalidArgumentError, SchemaError
from .schema import FieldType, Schema

__all__ = ["make_samples"]

T = TypeVar("T")
_LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def make_samples(sample_type: type[T], n: int, seed: int = 0) -> list[T]:
    """``n`` deterministic samples of ``sample_type`` (a packable class or a rebuilt type).

    >>> import atdata
    >>> @atdata.packable
    ... class P:
    ...     x: int
    ...     name: str
    >>> make_samples(P, 2, seed=0) == make_samples(P, 2, seed=0)
    True
    """
    if n < 0:
        raise InvalidArgumentError("n must be non-negative")
    schema = _schema_of(sample_type)
    rng = np.random.default_rng(seed)
    return [_sample(sample_type, schema, rng, i) for i in range(n)]


def _schema_of(sample_type: type) -> Schema:
    cached = sample_type.__dict__.get("__atdata_schema__")
    if isinstance(cached, Schema):
        return cached
    try:
        return Schema.from_type(sample_type)
    except SchemaError as exc:
        raise SchemaError(
            f"make_samples needs a packable sample type with annotated fields, "
            f"not {sample_type!r}: {exc}"
        ) from exc


def _sample(cls: type[T], schema: Schema, rng: np.random.Generator, i: int) -> T:
    values = {f.name: _value(f.type, rng, f"{f.name}-{i}") for f in schema.fields}
    return cls(**values)


def _value(ftype: FieldType, rng: np.random.Generator, label: str) -> Any:
    if ftype.optional and rng.random() < 0.25:
        return None
    kind = ftype.kind
    if kind in ("int", "any"):
        return int(rng.integers(-1000, 1000))
    if kind == "float":
        return float(rng.standard_normal())
    if kind == "bool":
        return bool(rng.integers(0, 2))
    if kind == "str":
        return label + "-" + "".join(rng.choice(_LETTERS, int(rng.integers(0, 6))))
    if kind == "bytes":
        return rng.bytes(int(rng.integers(0, 16)))
    if kind == "array":
        return _array(ftype, rng)
    if kind == "image":
        return _image(ftype, rng)
    if kind == "list":
        item = ftype.item or FieldType("int")
        return [_value(item, rng, f"{label}.{j}") for j in range(int(rng.integers(0, 4)))]
    if kind == "dict":
        item = ftype.item or FieldType("int")
        return {f"k{j}": _value(item, rng, f"{label}.k{j}") for j in range(int(rng.integers(0, 4)))}
    if kind == "sample" and ftype.schema is not None:
        cls = ftype.sample_type or ftype.schema.to_sample_type()
        return _sample(cls, ftype.schema, rng, 0)
    raise SchemaError(f"cannot generate values of kind {kind!r} for {label}")


def _image(ftype: FieldType, rng: np.random.Generator) -> Any:
    """A small random image in the field's format, mode and declared shape (needs Pillow)."""
    from .media.image import Image
    from .media.spec import MODES, ImageSpec

    spec = ftype.media or ImageSpec()
    h, w, c = spec.shape or (None, None, None)
    channels = MODES[spec.mode] if spec.mode else (c or 3)
    shape = (h or int(rng.integers(4, 17)), w or int(rng.integers(4, 17)), channels)
    fmt = spec.format or ("png" if channels == 4 else "jpeg")
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    return Image.encode(pixels, format=fmt, quality=spec.quality)


def _array(ftype: FieldType, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    dtype: np.dtype[Any] = np.dtype(ftype.dtype) if ftype.dtype else np.dtype(np.float32)
    dims = ftype.shape if ftype.shape is not None else (None,)
    shape = tuple(int(rng.integers(1, 5)) if d is None else d for d in dims)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(
            max(info.min, -128), min(info.max, 255), size=shape, endpoint=True
        ).astype(dtype)
    if dtype.kind in "fc":
        return rng.standard_normal(size=shape).astype(dtype)
    if dtype.kind in "US":
        words = rng.choice(_LETTERS, size=shape)
        return words.astype(dtype)
    return np.zeros(shape, dtype)
