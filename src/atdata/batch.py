"""``SampleBatch``: a batch of samples held as columns, with arrays stacked into ``(B, ...)``.

Batches are collated straight into preallocated arrays: from raw decoded maps on the fast path
(array bytes are copied once, from the shard buffer into the batch), or from sample instances when
a ``map``/``filter`` produced them. Array fields whose shapes or dtypes differ within a batch
(ragged) become lists of arrays; ``None`` values in an array field become a list too.
"""

import operator
import sys
from collections.abc import Callable, Iterator, Sequence
from itertools import repeat
from typing import Any, Generic, TypeVar, cast

import numpy as np

from .codec import SCALAR_TYPES as _SCALAR_KINDS
from .codec import Codec, check_dtype_shape, codec_for, decode_array, parse_array_header
from .errors import SchemaError
from .media.pool import Allocator, decode_column
from .media.spec import ImageSpec
from .schema import FieldType

__all__ = [
    "ArrayPool",
    "Collator",
    "SampleBatch",
    "collate_columns",
    "collate_maps",
    "collate_samples",
    "collate_samples_checked",
    "column_plan",
]

T = TypeVar("T")


class SampleBatch(Generic[T]):
    """Columns of ``len(batch)`` samples of type ``T``.

    ``batch.image`` is an array of shape ``(B, ...)`` when every sample's ``image`` has the same
    dtype and shape, else a list; non-array fields are lists. ``batch.keys`` are the sample keys.
    """

    __slots__ = ("_codec", "_columns", "_size", "keys")

    def __init__(self, codec: Codec[T], columns: dict[str, Any], keys: list[str]) -> None:
        self._codec = codec
        self._columns = columns
        self._size = len(keys)
        self.keys = keys

    @property
    def sample_type(self) -> type[T]:
        return self._codec.sample_type

    @property
    def columns(self) -> dict[str, Any]:
        """Field name -> stacked array or list."""
        return self._columns

    def __reduce__(self) -> tuple[Any, tuple[type[T], dict[str, Any], list[str]]]:
        """Pickled as its sample type, columns and keys; the codec is found again on load."""
        return (_unpickle_batch, (self._codec.sample_type, self._columns, self.keys))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._columns[name]
        except KeyError:
            raise AttributeError(
                f"{self._codec.schema.name} batch has no field {name!r}; fields: {list(self._columns)}"
            ) from None

    def __getitem__(self, name: str) -> Any:
        return self._columns[name]

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[T]:
        """The samples of the batch (arrays are views into the stacked columns)."""
        for i in range(self._size):
            data = {name: col[i] for name, col in self._columns.items()}
            obj: T = object.__new__(self._codec.sample_type)
            obj.__dict__ = data
            yield obj

    @property
    def samples(self) -> list[T]:
        return list(self)

    def __repr__(self) -> str:
        parts = []
        for name, col in self._columns.items():
            if isinstance(col, np.ndarray):
                parts.append(f"{name}: {col.dtype}{list(col.shape)}")
            else:
                parts.append(f"{name}: list[{len(col)}]")
        return f"SampleBatch[{self._codec.schema.name}]({len(self)}; {', '.join(parts)})"


def _unpickle_batch(
    sample_type: type[T], columns: dict[str, Any], keys: list[str]
) -> SampleBatch[T]:
    return SampleBatch(codec_for(sample_type), columns, keys)


_DICT_ONLY = {dict}
_SMALL_ROW = 16 << 10  # rows below this are stacked by one join; larger ones copied row by row
_POOL_MIN_BYTES = 1 << 20


class ArrayPool:
    """Batch arrays reused once nothing outside the pool refers to them any more.

    Writing into freshly allocated memory costs the kernel a page fault and a zero fill per
    page; reusing a batch array that the training loop has let go of avoids both. An array is
    only handed out again when ``sys.getrefcount`` shows that the pool holds the sole reference
    (no batch, view, tensor or memoryview of it is alive anywhere).
    """

    def __init__(self, slots: int = 4) -> None:
        self._arrays: list[np.ndarray[Any, Any]] = []
        self._slots = slots

    def empty(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
        for arr in self._arrays:
            # references: the pool's list, this loop's variable and getrefcount's argument
            if arr.shape == shape and arr.dtype == dtype and sys.getrefcount(arr) <= 3:
                return arr
        out: np.ndarray[Any, Any] = np.empty(shape, dtype=dtype)
        if out.nbytes >= _POOL_MIN_BYTES:
            self._arrays.append(out)
            if len(self._arrays) > self._slots:
                del self._arrays[0]
        return out


_BYTES_TYPES = frozenset({bytes, memoryview})


class Collator(Generic[T]):
    """Validates and collates a batch of decoded maps column by column (the fast batch path).

    Each column is checked as a whole (the set of value types, one array header per column)
    instead of value by value. :meth:`collate` returns None when anything does not fit, and the
    caller then checks the batch's samples one by one to report the culprit.
    """

    def __init__(self, codec: Codec[T]) -> None:
        self.codec = codec
        self._names = frozenset(codec.names)
        self._columns = column_plan(codec)
        self.pool = ArrayPool()
        #: where batch arrays are allocated (a DataLoader worker swaps in shared memory)
        self.empty: Allocator = self.pool.empty

    def collate(self, maps: list[Any], keys: list[str]) -> SampleBatch[T] | None:
        columns = collate_columns(maps, self._names, self._columns, self._stack, self.empty)
        return None if columns is None else SampleBatch(self.codec, columns, keys)

    def _stack(self, col: list[Any], ftype: FieldType, path: str) -> Any:
        first = col[0]
        if None in col or type(first) not in (bytes, memoryview) or first[:6] == b"\x93NUMPY":
            return self._one_by_one(col, ftype, path)
        try:
            dtype, shape, hlen = parse_array_header(first)
            check_dtype_shape(ftype, dtype, shape, path)
        except SchemaError:
            return None
        lengths = set(map(len, col))
        if len(lengths) != 1 or not set(map(type, col)) <= _BYTES_TYPES:
            return self._one_by_one(col, ftype, path)
        row = len(first) - hlen
        count = len(col)
        if row < _SMALL_ROW:
            table = np.frombuffer(b"".join(col), dtype=np.uint8).reshape(count, hlen + row)
            if not (table[:, :hlen] == np.frombuffer(first[:hlen], dtype=np.uint8)).all():
                return self._one_by_one(col, ftype, path)
            return table[:, hlen:].copy().view(dtype).reshape((count, *shape))
        header = first[:hlen]
        out = self.empty((count, *shape), dtype)
        flat = memoryview(cast(Any, out)).cast("B")
        for i, v in enumerate(col):
            if v[:hlen] != header:
                return self._one_by_one(col, ftype, path)
            flat[i * row : (i + 1) * row] = memoryview(v)[hlen:]
        return out

    def _one_by_one(self, col: list[Any], ftype: FieldType, path: str) -> Any:
        """Ragged arrays, None values or .npy payloads: each value checked and decoded alone."""
        arrays: list[Any] = []
        for v in col:
            if v is None:
                if not ftype.optional:
                    return None
                arrays.append(None)
                continue
            if type(v) not in (bytes, memoryview):
                return None
            try:
                arr = decode_array(v)
                check_dtype_shape(ftype, arr.dtype, arr.shape, path)
            except SchemaError:
                return None
            arrays.append(arr)
        return _stack_arrays(arrays, path)


def collate_maps(
    codec: Codec[T], maps: Sequence[dict[str, Any]], keys: list[str]
) -> SampleBatch[T]:
    """Collate validated raw maps (array fields still as bytes) into a batch."""
    columns: dict[str, Any] = {}
    array_fields = codec.array_fields
    for name in codec.names:
        if name in array_fields:
            columns[name] = _stack_array_bytes([m[name] for m in maps], f"$.{name}")
        elif name in codec.image_fields:  # decoded by check_map
            columns[name] = _stack_arrays([m[name] for m in maps], f"$.{name}")
        else:
            columns[name] = [m[name] for m in maps]
    return SampleBatch(codec, columns, keys)


def _stack_array_bytes(values: list[Any], path: str) -> Any:
    first = values[0]
    if first is None:
        return [None if v is None else decode_array(v) for v in values]
    if first[:6] == b"\x93NUMPY":
        return _stack_arrays([None if v is None else decode_array(v) for v in values], path)
    dtype, shape, hlen = parse_array_header(first)
    header = first[:hlen]
    out = np.empty((len(values), *shape), dtype=dtype)
    row = out.nbytes // len(values) if values else 0
    flat = memoryview(cast(Any, out)).cast("B") if out.nbytes else None
    for i, v in enumerate(values):
        if v is None or v[:hlen] != header or len(v) - hlen != row:
            return [None if v is None else decode_array(v) for v in values]  # ragged
        if flat is not None:
            flat[i * row : (i + 1) * row] = memoryview(v)[hlen:]
    return out


def _stack_arrays(arrays: list[Any], path: str, empty: Allocator | None = None) -> Any:
    first = arrays[0]
    if first is None or not isinstance(first, np.ndarray):
        return arrays
    for a in arrays:
        if not isinstance(a, np.ndarray) or a.shape != first.shape or a.dtype != first.dtype:
            return arrays
    out = (empty or _fresh)((len(arrays), *first.shape), first.dtype)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


def _fresh(shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    return np.empty(shape, dtype=dtype)


def collate_samples(
    codec: Codec[T], samples: Sequence[T], keys: list[str], empty: Allocator | None = None
) -> SampleBatch[T]:
    """Collate sample instances (e.g. after ``map``) into a batch (batch arrays from
    ``empty(shape, dtype)`` when given)."""
    columns: dict[str, Any] = {}
    for name in codec.names:
        try:
            values = [s.__dict__[name] for s in samples]
        except (KeyError, AttributeError):
            raise SchemaError(
                f"$.{name}: missing in a sample of the batch", path=f"$.{name}"
            ) from None
        if name in codec.image_fields:
            spec = codec.schema.field(name).type.media or ImageSpec()
            values = decode_column(values, spec, f"$.{name}", empty)
        stacked = name in codec.array_fields or name in codec.image_fields
        if stacked and isinstance(values, list):
            values = _stack_arrays(values, f"$.{name}", empty)
        columns[name] = values
    return SampleBatch(codec, columns, keys)


def collate_columns(
    maps: list[Any],
    names: frozenset[str],
    plan: list[tuple[str, str, Any]],
    stack: Callable[[list[Any], Any, str], Any],
    empty: Callable[..., Any],
) -> dict[str, Any] | None:
    """Field name -> column of a batch of decoded maps, checked column by column; None when
    anything does not fit (a map that is not a dict with exactly ``names``, a value of the wrong
    type, an array column ``stack`` cannot stack), so that the caller checks sample by sample.

    ``plan`` comes from :func:`column_plan`; ``stack(column, field_type, path)`` builds an array
    column or returns None; image columns decode into arrays from ``empty(shape, dtype)``. Shared by :class:`Collator` and the torch feed's collator.
    """
    if set(map(type, maps)) != _DICT_ONLY or not all(
        map(operator.eq, map(dict.keys, maps), repeat(names))
    ):
        return None
    columns: dict[str, Any] = {}
    for kind, name, spec in plan:
        col = list(map(operator.itemgetter(name), maps))
        if kind == "scalar":
            if not set(map(type, col)) <= spec:
                return None
        elif kind == "array":
            col = stack(col, spec, f"$.{name}")
            if col is None:
                return None
        elif kind == "image":
            try:
                col = decode_column(col, spec, f"$.{name}", empty)
            except SchemaError:
                return None
        elif kind == "any":
            if memoryview in set(map(type, col)):  # a large body's top-level bin values
                col = [bytes(v) if type(v) is memoryview else v for v in col]
        elif kind == "convert":
            try:
                col = [spec(v, f"$.{name}") for v in col]
            except SchemaError:
                return None
        columns[name] = col
    return columns


def collate_samples_checked(
    codec: Codec[T],
    samples: Sequence[T],
    keys: list[str],
    handle: Callable[[SchemaError], None],
    empty: Allocator | None = None,
) -> SampleBatch[T] | None:
    """:func:`collate_samples`, except that a sample whose image does not decode is handed to
    ``handle`` (a SchemaError naming the field and the sample key) and left out of the batch;
    None when no sample is left."""
    try:
        return collate_samples(codec, samples, keys, empty)
    except SchemaError:
        if not codec.image_fields:
            raise
    good: list[T] = []
    good_keys: list[str] = []
    specs = {n: codec.schema.field(n).type.media or ImageSpec() for n in codec.image_fields}
    for sample, key in zip(samples, keys, strict=True):
        try:
            for name, spec in specs.items():
                decode_column([sample.__dict__.get(name)], spec, f"$.{name}", threads=1)
        except SchemaError as exc:
            handle(SchemaError(f"{exc} [sample {key!r}]", path=exc.path))
            continue
        good.append(sample)
        good_keys.append(key)
    return collate_samples(codec, good, good_keys, empty) if good else None


def column_plan(codec: Codec[Any]) -> list[tuple[str, str, Any]]:
    """How each field's column is collated: ``(kind, name, detail)`` with kind ``scalar`` (the
    accepted Python types), ``array`` (the field type), ``image`` (its ImageSpec), ``any``, or
    ``convert`` (the decoder)."""
    columns: list[tuple[str, str, Any]] = []
    for f in codec.schema.fields:
        kind = f.type.kind
        if kind in _SCALAR_KINDS:
            accepted = set(_SCALAR_KINDS[kind])
            if f.type.optional:
                accepted.add(type(None))
            columns.append(("scalar", f.name, frozenset(accepted)))
        elif kind == "array":
            columns.append(("array", f.name, f.type))
        elif kind == "image":
            columns.append(("image", f.name, f.type.media or ImageSpec()))
        elif kind == "any":
            columns.append(("any", f.name, None))
        else:
            columns.append(("convert", f.name, codec.field_decoder(f.name)))
    return columns
