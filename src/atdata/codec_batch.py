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

from typing import Any

import msgpack
import numpy as np

from .codec import LARGE_ARRAY, SCALAR_TYPES, Codec, array_header, check_dtype_shape, check_storable
from .errors import SchemaError
from .schema import FieldType

__all__ = ["BatchEncoder", "batch_encoder"]

_NONE = type(None)
_MAX_HEADERS = 64  # distinct (dtype, shape) pairs remembered per array field


class _ArrayColumn:
    """One array field: its declared type and the compact headers of the layouts seen valid."""

    __slots__ = ("ftype", "headers", "optional", "path")

    def __init__(self, ftype: FieldType, path: str) -> None:
        self.ftype = ftype
        self.path = path
        self.optional = ftype.optional
        self.headers: dict[tuple[np.dtype[Any], tuple[int, ...]], bytes] = {}

    def header(self, value: np.ndarray[Any, Any]) -> bytes | None:
        """The compact header of ``value`` if it passes the codec's checks, else None."""
        key = (value.dtype, value.shape)
        found = self.headers.get(key)
        if found is not None:
            return found
        try:
            check_dtype_shape(self.ftype, value.dtype, value.shape, self.path)
            check_storable(value)
        except SchemaError:
            return None  # the per-sample path raises it, naming the sample
        found = array_header(value.dtype, value.shape)
        if len(self.headers) >= _MAX_HEADERS:
            self.headers.clear()
        self.headers[key] = found
        return found

    def encode(self, column: list[Any]) -> list[Any] | None:
        out: list[Any] = []
        append = out.append
        header = self.header
        for value in column:
            if type(value) is np.ndarray:
                if value.nbytes >= LARGE_ARRAY:
                    return None  # written in pieces by the per-sample path
                head = header(value)
                if head is None:
                    return None
                append(head + value.tobytes())  # C order, as encode_array writes it
            elif value is None and self.optional:
                append(None)
            else:
                return None
        return out


class BatchEncoder:
    """Msgpack bodies of many samples of one flat type (see the module docstring)."""

    def __init__(self, codec: Codec[Any]) -> None:
        self.names = codec.names
        self._columns: list[frozenset[type] | _ArrayColumn | None] = []
        for f in codec.schema.fields:
            kind = f.type.kind
            if kind == "array":
                self._columns.append(_ArrayColumn(f.type, f"$.{f.name}"))
            elif kind in SCALAR_TYPES:
                accepted = set(SCALAR_TYPES[kind])
                if f.type.optional:
                    accepted.add(_NONE)
                self._columns.append(frozenset(accepted))
            else:  # "any": passed through as it is
                self._columns.append(None)
        self._pack = msgpack.Packer(use_bin_type=True).pack

    def encode(self, samples: list[Any]) -> list[bytes] | None:
        """The bodies of ``samples`` (each exactly ``codec.encode(sample)``), or None when any
        of them needs the per-sample path."""
        if not self.names:
            return None
        try:
            values = [sample.__dict__ for sample in samples]
            columns = [[v[name] for v in values] for name in self.names]
        except (AttributeError, KeyError):
            return None
        for i, rule in enumerate(self._columns):
            if rule is None:
                continue
            if isinstance(rule, _ArrayColumn):
                encoded = rule.encode(columns[i])
                if encoded is None:
                    return None
                columns[i] = encoded
            elif not set(map(type, columns[i])) <= rule:
                return None
        names, pack = self.names, self._pack
        try:
            return [pack(dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]
        except (TypeError, ValueError, OverflowError):
            return None


_FLAT_KINDS = frozenset((*SCALAR_TYPES, "array", "any"))


def batch_encoder(codec: Codec[Any]) -> BatchEncoder | None:
    """A :class:`BatchEncoder` for ``codec``'s type, or None when a field is not flat (images,
    nested samples, lists, dicts)."""
    if not all(f.type.kind in _FLAT_KINDS for f in codec.schema.fields):
        return None
    return BatchEncoder(codec)
