"""``SampleBatch``: a batch of samples held as columns, with arrays stacked into ``(B, ...)``.

Batches are collated straight into preallocated arrays: from raw decoded maps on the fast path
(array bytes are copied once, from the shard buffer into the batch), or from sample instances when
a ``map``/``filter`` produced them. Array fields whose shapes or dtypes differ within a batch
(ragged) become lists of arrays; ``None`` values in an array field become a list too.
"""

from collections.abc import Iterator, Sequence
from typing import Any, Generic, TypeVar, cast

import numpy as np

from .codec import Codec, decode_array, parse_array_header
from .errors import SchemaError

__all__ = ["SampleBatch", "collate_maps", "collate_samples"]

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


def collate_maps(
    codec: Codec[T], maps: Sequence[dict[str, Any]], keys: list[str]
) -> SampleBatch[T]:
    """Collate validated raw maps (array fields still as bytes) into a batch."""
    columns: dict[str, Any] = {}
    array_fields = codec.array_fields
    for name in codec.names:
        if name in array_fields:
            columns[name] = _stack_array_bytes([m[name] for m in maps], f"$.{name}")
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


def _stack_arrays(arrays: list[Any], path: str) -> Any:
    first = arrays[0]
    if first is None or not isinstance(first, np.ndarray):
        return arrays
    for a in arrays:
        if not isinstance(a, np.ndarray) or a.shape != first.shape or a.dtype != first.dtype:
            return arrays
    out = np.empty((len(arrays), *first.shape), dtype=first.dtype)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


def collate_samples(codec: Codec[T], samples: Sequence[T], keys: list[str]) -> SampleBatch[T]:
    """Collate sample instances (e.g. after ``map``) into a batch."""
    columns: dict[str, Any] = {}
    for name in codec.names:
        try:
            values = [s.__dict__[name] for s in samples]
        except (KeyError, AttributeError):
            raise SchemaError(
                f"$.{name}: missing in a sample of the batch", path=f"$.{name}"
            ) from None
        columns[name] = _stack_arrays(values, f"$.{name}") if name in codec.array_fields else values
    return SampleBatch(codec, columns, keys)
