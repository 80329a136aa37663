"""Encoding many samples of one flat type at once: the writer's fast path for small records.

A :class:`BatchEncoder` turns a list of samples into their msgpack bodies, byte for byte what
:meth:`~atdata.codec.Codec.encode` gives for each (tests pin it), with the per-sample Python
work cut to a minimum: each field's values are gathered as a column and their types checked in
one pass, arrays of an already-checked dtype and shape skip the checks and reuse their compact
header, and one msgpack packer packs the maps.

It only takes the easy case: a type whose fields are all scalars, arrays or ``Any``, every
value of the exact type the codec passes through unchanged (``int``, ``str``, ...; ``None`` for
optional fields) and every array a plain ``ndarray`` under :data:`~atdata.codec.LARGE_ARRAY`
bytes. For anything else :meth:`BatchEncoder.encode` returns None, having changed nothing, and
the caller encodes sample by sample (where conversions happen and errors name their sample).
"""

from operator import attrgetter
from typing import Any

import msgpack
import numpy as np

from ._msgpack_parts import bin_header
from .codec import LARGE_ARRAY, SCALAR_TYPES, Codec, array_header, check_dtype_shape, check_storable
from .errors import SchemaError
from .schema import FieldType

__all__ = ["BatchEncoder", "batch_encoder"]

_NONE = type(None)
_MAX_HEADERS = 64  # distinct (dtype, shape) pairs remembered per array field
_NIL = msgpack.packb(None)
_LAYOUT = attrgetter("dtype", "shape")


class _ArrayColumn:
    """One array field: its declared type and the compact headers of the layouts seen valid."""

    __slots__ = ("ftype", "headers", "optional", "path")

    def __init__(self, ftype: FieldType, path: str) -> None:
        self.ftype = ftype
        self.path = path
        self.optional = ftype.optional
        self.headers: dict[tuple[np.dtype[Any], tuple[int, ...]], bytes] = {}

    def header(self, value: np.ndarray[Any, Any]) -> bytes | None:
        """The compact header of arrays of ``value``'s dtype and shape if they pass the codec's
        checks, else None."""
        layout = (value.dtype, value.shape)
        found = self.headers.get(layout)
        if found is not None:
            return found
        dtype, shape = layout
        try:
            check_dtype_shape(self.ftype, dtype, shape, self.path)
            check_storable(value)
        except SchemaError:
            return None  # the per-sample path raises it, naming the sample
        found = array_header(dtype, shape)
        if len(self.headers) >= _MAX_HEADERS:
            self.headers.clear()
        self.headers[layout] = found
        return found

    def pack(self, key: bytes, column: list[Any]) -> list[bytes] | None:
        """``key`` + the msgpack ``bin`` of each array's compact form (None: a value the
        per-sample path must take)."""
        if set(map(type, column)) == {np.ndarray}:
            layouts = set(map(_LAYOUT, column))
            if len(layouts) == 1:  # one header, one size: one prefix for them all
                head = self.header(column[0])
                size = column[0].nbytes
                if head is None or size >= LARGE_ARRAY:
                    return None
                prefix = key + bin_header(len(head) + size) + head
                return list(map(prefix.__add__, map(np.ndarray.tobytes, column)))
        out: list[bytes] = []
        for value in column:
            if type(value) is np.ndarray:
                head = self.header(value)
                if head is None or value.nbytes >= LARGE_ARRAY:
                    return None
                out.append(key + bin_header(len(head) + value.nbytes) + head + value.tobytes())
            elif value is None and self.optional:
                out.append(key + _NIL)
            else:
                return None
        return out


class BatchEncoder:
    """Msgpack bodies of many samples of one flat type (see the module docstring).

    A map packs as its header and then each key and value packed in turn, so each field's
    values are packed as one column (with the field's packed key, and the map header on the
    first field) and each body is the join of its row.
    """

    def __init__(self, codec: Codec[Any]) -> None:
        self.names = codec.names
        packer = msgpack.Packer(use_bin_type=True)
        self._pack = packer.pack
        self._columns: list[tuple[bytes, frozenset[type] | _ArrayColumn | None]] = []
        for i, f in enumerate(codec.schema.fields):
            key = (packer.pack_map_header(len(self.names)) if i == 0 else b"") + packer.pack(f.name)
            kind = f.type.kind
            rule: frozenset[type] | _ArrayColumn | None
            if kind == "array":
                rule = _ArrayColumn(f.type, f"$.{f.name}")
            elif kind in SCALAR_TYPES:
                accepted = set(SCALAR_TYPES[kind])
                if f.type.optional:
                    accepted.add(_NONE)
                rule = frozenset(accepted)
            else:  # "any": passed through as it is
                rule = None
            self._columns.append((key, rule))

    def encode(self, samples: list[Any]) -> list[bytes] | None:
        """The bodies of ``samples`` (each exactly ``codec.encode(sample)``), or None when any
        of them needs the per-sample path."""
        if not self.names or not samples:
            return None
        try:
            values = [sample.__dict__ for sample in samples]
            columns = [[v[name] for v in values] for name in self.names]
        except (AttributeError, KeyError):
            return None
        pack = self._pack
        packed: list[list[bytes]] = []
        try:
            for (key, rule), column in zip(self._columns, columns, strict=True):
                if isinstance(rule, _ArrayColumn):
                    done = rule.pack(key, column)
                    if done is None:
                        return None
                    packed.append(done)
                    continue
                if rule is not None and not set(map(type, column)) <= rule:
                    return None
                packed.append(list(map(key.__add__, map(pack, column))))
        except (TypeError, ValueError, OverflowError):
            return None
        return list(map(b"".join, zip(*packed, strict=True)))


_FLAT_KINDS = frozenset((*SCALAR_TYPES, "array", "any"))


def batch_encoder(codec: Codec[Any]) -> BatchEncoder | None:
    """A :class:`BatchEncoder` for ``codec``'s type, or None when a field is not flat (images,
    nested samples, lists, dicts)."""
    if not all(f.type.kind in _FLAT_KINDS for f in codec.schema.fields):
        return None
    return BatchEncoder(codec)
