"""Per-type codecs: msgpack maps <-> sample instances, compiled once per sample type.

A :class:`Codec` holds, for every field, a small converter chosen from the field's
:class:`~atdata.schema.FieldType` when the codec is built; encoding and decoding a sample never
look at annotations again. Arrays use the compact layout of docs/format.md §1 (and ``.npy`` on
read).
"""

import struct
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

import msgpack
import numpy as np

from ._msgpack_parts import pack_map_parts
from ._msgpack_view import unpack_map_view
from ._npy import NPY_MAGIC, check_array_dtype, check_array_shape, parse_npy
from .dict_sample import DictSample
from .errors import SchemaError
from .media.codec import image_checker, image_decoder, image_encoder
from .media.spec import ImageSpec
from .schema import FieldType, Schema

__all__ = [
    "Codec",
    "LARGE_ARRAY",
    "SCALAR_TYPES",
    "array_header",
    "check_dtype_shape",
    "check_storable",
    "codec_for",
    "decode_array",
    "encode_array",
    "field_defaults",
    "parse_array_header",
    "unpack_map",
]

T = TypeVar("T")
Converter = Callable[[Any, str], Any]

_NPY_MAGIC = NPY_MAGIC
_HEADER_CACHE: dict[bytes, tuple[np.dtype[Any], tuple[int, ...], int]] = {}
_HEADER_CACHE_MAX = 4096
#: Arrays of at least this many bytes are written without copies through msgpack's buffer.
LARGE_ARRAY = 1 << 16


# --------------------------------------------------------------------------- array layout
def array_header(dtype: np.dtype[Any], shape: tuple[int, ...]) -> bytes:
    """The compact-array prefix: dtype string length, dtype string, ndim, int64 shape."""
    dstr = dtype.str.encode("ascii")
    return (
        bytes((len(dstr),)) + dstr + bytes((len(shape),)) + struct.pack(f"<{len(shape)}q", *shape)
    )


def encode_array(value: np.ndarray[Any, Any]) -> bytes:
    """Serialize an array in the compact layout (C order, no padding)."""
    check_storable(value)
    return array_header(value.dtype, value.shape) + np.ascontiguousarray(value).tobytes()


def check_storable(value: np.ndarray[Any, Any]) -> None:
    """Raise SchemaError for an array the compact layout cannot hold."""
    if value.dtype.hasobject:
        raise SchemaError("object arrays cannot be stored")
    if value.dtype.names is not None:
        raise SchemaError(
            f"structured arrays ({value.dtype}) cannot be stored: the compact layout keeps only "
            "dtype.str, which loses field names; store each field as its own array"
        )
    if value.ndim > 255:
        raise SchemaError(f"arrays of {value.ndim} dimensions cannot be stored (max 255)")


def parse_array_header(buf: bytes | memoryview) -> tuple[np.dtype[Any], tuple[int, ...], int]:
    """Return (dtype, shape, header length) of a compact array, validating it against its size."""
    n = len(buf)
    if n < 2:
        raise SchemaError(f"array value of {n} bytes is too short for a header")
    dlen = buf[0]
    ndim_at = 1 + dlen
    if ndim_at >= n:
        raise SchemaError("array header is truncated")
    hlen = ndim_at + 1 + 8 * buf[ndim_at]
    if hlen > n:
        raise SchemaError("array header is truncated")
    key = bytes(buf[:hlen])
    hit = _HEADER_CACHE.get(key)
    if hit is not None:
        dtype, shape, _ = hit
    else:
        try:
            dtype = np.dtype(key[1:ndim_at].decode("ascii"))
        except Exception as exc:  # numpy's dtype parser raises several unrelated types
            raise SchemaError(f"array header names an unknown dtype {key[1:ndim_at]!r}") from exc
        check_array_dtype(dtype, "array header")
        shape = struct.unpack_from(f"<{key[ndim_at]}q", key, ndim_at + 1)
        check_array_shape(shape, dtype.itemsize, "array header")
        if len(_HEADER_CACHE) >= _HEADER_CACHE_MAX:
            _HEADER_CACHE.clear()
        _HEADER_CACHE[key] = (dtype, shape, hlen)
    count = 1
    for d in shape:
        count *= d
    if count * dtype.itemsize != n - hlen:
        raise SchemaError(
            f"array header says {dtype.str}{list(shape)} ({count * dtype.itemsize} bytes) "
            f"but {n - hlen} bytes follow"
        )
    return dtype, shape, hlen


def decode_array(buf: bytes | memoryview) -> np.ndarray[Any, Any]:
    """Decode a compact array (zero copy; read-only) or a ``.npy`` payload (no pickles)."""
    if buf[:6] == _NPY_MAGIC:
        return _decode_npy(buf)
    dtype, shape, hlen = parse_array_header(buf)
    return np.frombuffer(buf, dtype=dtype, offset=hlen).reshape(shape)


def _decode_npy(buf: bytes | memoryview) -> np.ndarray[Any, Any]:
    """A ``.npy`` payload (zero copy; read-only), its header checked before anything is built."""
    dtype, shape, fortran, start = parse_npy(buf)
    count = 1
    for d in shape:
        count *= d
    if count * dtype.itemsize != len(buf) - start:
        raise SchemaError(
            f".npy header says {dtype.str}{list(shape)} ({count * dtype.itemsize} bytes) "
            f"but {len(buf) - start} bytes follow"
        )
    flat = np.frombuffer(buf, dtype=dtype, count=count, offset=start)
    return flat.reshape(shape, order="F" if fortran else "C")


# --------------------------------------------------------------------------- converters
def _type_error(path: str, expected: str, value: Any) -> SchemaError:
    return SchemaError(f"{path}: expected {expected}, got {type(value).__name__}", path=path)


def _check_array(ftype: FieldType, value: np.ndarray[Any, Any], path: str) -> None:
    check_dtype_shape(ftype, value.dtype, value.shape, path)


def check_dtype_shape(
    ftype: FieldType, dtype: np.dtype[Any], shape: tuple[int, ...], path: str
) -> None:
    if (
        ftype.dtype is not None
        and dtype.str != ftype.dtype
        and not (dtype.itemsize == 1 and dtype == np.dtype(ftype.dtype))
    ):
        raise SchemaError(f"{path}: expected dtype {ftype.dtype}, got {dtype.str}", path=path)
    want = ftype.shape
    if want is not None and (
        len(shape) != len(want)
        or any(w is not None and w != g for w, g in zip(want, shape, strict=True))
    ):
        raise SchemaError(
            f"{path}: expected shape {_shape_text(want)}, got {tuple(shape)}", path=path
        )


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return (
        "("
        + ", ".join("?" if d is None else str(d) for d in shape)
        + (",)" if len(shape) == 1 else ")")
    )


SCALAR_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "bytes": (bytes,),
}


def _optional(conv: Converter) -> Converter:
    def convert(value: Any, path: str) -> Any:
        return None if value is None else conv(value, path)

    return convert


def _encoder(ftype: FieldType) -> Converter | None:
    """Converter from a Python value to a msgpack-ready value; None when no work is needed."""
    conv = _encoder_required(ftype)
    if conv is None or not ftype.optional:
        return conv
    return _optional(conv)


def _encoder_required(ftype: FieldType) -> Converter | None:
    kind = ftype.kind
    if kind == "any":
        return None
    if kind in SCALAR_TYPES:
        return _scalar_encoder(kind, ftype.optional)
    if kind == "array":

        def enc_array(value: Any, path: str) -> bytes:
            if not isinstance(value, np.ndarray):
                raise _type_error(path, "a numpy array", value)
            _check_array(ftype, value, path)
            try:
                return encode_array(value)
            except SchemaError as exc:
                raise SchemaError(f"{path}: {exc}", path=path) from None

        return enc_array
    if kind == "image":
        return image_encoder(ftype.media or ImageSpec(), ftype.optional)
    if kind == "sample":
        assert ftype.schema is not None
        nested = _nested_codec(ftype)
        return nested.to_map_at
    assert ftype.item is not None or kind in ("list", "dict")
    item_conv = _encoder(ftype.item) if ftype.item is not None else None
    return _container_converter(kind, item_conv)


def _scalar_encoder(kind: str, optional: bool) -> Converter:
    accepted = SCALAR_TYPES[kind]

    def enc_scalar(value: Any, path: str) -> Any:
        if type(value) in accepted:
            return value
        if value is None and optional:
            return None
        if kind == "int" and isinstance(value, np.integer | int) and not isinstance(value, bool):
            return int(value)
        if kind == "float" and isinstance(value, np.floating | np.integer | int | float):
            return float(value)
        if kind == "bool" and isinstance(value, np.bool_):
            return bool(value)
        if kind == "bytes" and isinstance(value, bytearray | memoryview):
            return bytes(value)
        if kind == "str" and isinstance(value, str):
            return str(value)
        raise _type_error(path, kind, value)

    return enc_scalar


def _container_converter(kind: str, item_conv: Converter | None) -> Converter:
    if kind == "list":

        def conv_list(value: Any, path: str) -> Any:
            if not isinstance(value, list | tuple):
                raise _type_error(path, "a list", value)
            if item_conv is None:
                return list(value)
            return [item_conv(v, f"{path}[{i}]") for i, v in enumerate(value)]

        return conv_list

    def conv_dict(value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise _type_error(path, "a dict", value)
        for k in value:
            if not isinstance(k, str):
                raise SchemaError(f"{path}: dict keys must be str, got {k!r}", path=path)
        if item_conv is None:
            return dict(value)
        return {k: item_conv(v, f"{path}.{k}") for k, v in value.items()}

    return conv_dict


def _decoder(ftype: FieldType) -> Converter | None:
    """Converter from a decoded msgpack value to the field's Python value."""
    kind = ftype.kind
    if kind == "any":
        return _dec_any
    if kind in SCALAR_TYPES:
        accepted = SCALAR_TYPES[kind] + ((type(None),) if ftype.optional else ())
        is_bytes = kind == "bytes"

        def dec_scalar(value: Any, path: str) -> Any:
            if type(value) in accepted:
                return value
            if is_bytes and type(value) is memoryview:
                return bytes(value)  # large bodies hand top-level bin values over as views
            raise _type_error(path, ftype.describe(), value)

        return dec_scalar
    if kind == "array":

        def dec_array(value: Any, path: str) -> Any:
            if type(value) is not bytes and not isinstance(value, memoryview):
                if value is None and ftype.optional:
                    return None
                raise _type_error(path, "array bytes", value)
            try:
                arr = decode_array(value)
            except SchemaError as exc:
                raise SchemaError(f"{path}: {exc}", path=path) from None
            _check_array(ftype, arr, path)
            return arr

        return dec_array
    if kind == "image":
        return image_decoder(ftype.media or ImageSpec(), ftype.optional)
    if kind == "sample":
        assert ftype.schema is not None
        nested = _nested_codec(ftype)
        conv: Converter = nested.from_map_at
    else:
        item = ftype.item
        item_conv = _decoder(item) if item is not None and item.kind != "any" else None
        conv = _container_converter(kind, item_conv)
    return _optional(conv) if ftype.optional else conv


def _dec_any(value: Any, path: str) -> Any:
    return bytes(value) if type(value) is memoryview else value


def _checker(ftype: FieldType) -> Converter | None:
    """The batch path's converter: arrays validated but left as bytes, images decoded."""
    if ftype.kind == "array":
        return _array_checker(ftype)
    if ftype.kind == "image":
        return image_checker(ftype.media or ImageSpec(), ftype.optional)
    return _decoder(ftype)


def _array_checker(ftype: FieldType) -> Converter:
    """Validate array bytes against the field (dtype, shape, byte count) without decoding."""

    last_header = b""
    last_size = -1

    def check_array(value: Any, path: str) -> Any:
        nonlocal last_header, last_size
        if type(value) is bytes or isinstance(value, memoryview):
            if len(value) == last_size and value[: len(last_header)] == last_header:
                return value  # same header and size as the previous valid value
        elif value is None and ftype.optional:
            return None
        else:
            raise _type_error(path, "array bytes", value)
        try:
            if value[:6] == _NPY_MAGIC:
                _check_array(ftype, decode_array(value), path)
                return value
            dtype, shape, hlen = parse_array_header(value)
        except SchemaError as exc:
            if exc.path != "$":
                raise
            raise SchemaError(f"{path}: {exc}", path=path) from None
        check_dtype_shape(ftype, dtype, shape, path)
        last_header, last_size = bytes(value[:hlen]), len(value)
        return value

    return check_array


# --------------------------------------------------------------------------- the codec
class Codec(Generic[T]):
    """Encoder and decoder of one sample type, built once (see :func:`codec_for`)."""

    def __init__(self, sample_type: type[T], schema: Schema) -> None:
        self.sample_type = sample_type
        self.schema = schema
        self.names = tuple(f.name for f in schema.fields)
        self._name_set = frozenset(self.names)
        self._encoders = [(f.name, _encoder(f.type)) for f in schema.fields]
        self._decoders = [(f.name, c) for f in schema.fields if (c := _decoder(f.type)) is not None]
        self.array_fields = frozenset(f.name for f in schema.fields if f.type.kind == "array")
        self.image_fields = frozenset(f.name for f in schema.fields if f.type.kind == "image")
        self._checkers = [(f.name, c) for f in schema.fields if (c := _checker(f.type)) is not None]
        self._paths = {f.name: f"$.{f.name}" for f in schema.fields}
        self._optional = {f.name for f in schema.fields if not f.required or f.type.optional}
        self._defaults = field_defaults(sample_type)
        self._packer = msgpack.Packer(use_bin_type=True)
        self._array_types = {f.name: f.type for f in schema.fields if f.type.kind == "array"}

    # -- encode -----------------------------------------------------------------------------
    def to_map(self, sample: T) -> dict[str, Any]:
        return self.to_map_at(sample, "$")

    def to_map_at(self, sample: Any, path: str) -> dict[str, Any]:
        if isinstance(sample, DictSample):
            values: dict[str, Any] = sample.to_dict()
        else:
            try:
                values = sample.__dict__
            except AttributeError:
                raise _type_error(path, self.schema.name, sample) from None
        out: dict[str, Any] = {}
        prefix = "$." if path == "$" else path + "."
        for name, conv in self._encoders:
            try:
                value = values[name]
            except KeyError:
                raise SchemaError(f"{prefix}{name}: missing field", path=prefix + name) from None
            out[name] = value if conv is None else conv(value, prefix + name)
        return out

    def encode(self, sample: T) -> bytes:
        """The msgpack body for ``sample``."""
        data = self.to_map(sample)  # its SchemaErrors carry the field path: let them through
        try:
            body: bytes = self._packer.pack(data)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SchemaError(f"cannot serialize {self.schema.name} sample: {exc}") from exc
        return body

    def encode_parts(self, sample: T) -> list[bytes]:
        """:meth:`encode`'s bytes as a list of pieces (their concatenation): arrays of at least
        ``LARGE_ARRAY`` bytes are copied once, into a piece of their own."""
        if not self._array_types:
            return [self.encode(sample)]
        try:
            values = sample.to_dict() if isinstance(sample, DictSample) else sample.__dict__
        except AttributeError:
            return [self.encode(sample)]  # raises the usual type error
        large: dict[str, tuple[bytes, np.ndarray[Any, Any]]] = {}
        for name, ftype in self._array_types.items():
            value = values.get(name)
            if isinstance(value, np.ndarray) and value.nbytes >= LARGE_ARRAY:
                path = self._paths[name]
                _check_array(ftype, value, path)
                try:
                    check_storable(value)
                except SchemaError as exc:
                    raise SchemaError(f"{path}: {exc}", path=path) from None
                large[name] = (array_header(value.dtype, value.shape), value)
        if not large:
            return [self.encode(sample)]
        out: dict[str, Any] = {}
        for name, conv in self._encoders:
            if name in large:
                out[name] = None
                continue
            try:
                value = values[name]
            except KeyError:
                raise SchemaError(f"$.{name}: missing field", path=f"$.{name}") from None
            out[name] = value if conv is None else conv(value, f"$.{name}")
        try:
            return pack_map_parts(self._packer, out, large)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SchemaError(f"cannot serialize {self.schema.name} sample: {exc}") from exc

    # -- decode -----------------------------------------------------------------------------
    def decode(self, body: bytes | memoryview) -> T:
        """Decode one msgpack body into a sample."""
        return self.from_map(unpack_map(body))

    def from_map(self, data: dict[str, Any]) -> T:
        """Build a sample from a freshly decoded map (the map is taken over, not copied)."""
        return self.from_map_at(data, "$")

    def from_map_at(self, data: Any, path: str) -> T:
        data = self._convert(data, path, self._decoders)
        obj: T = object.__new__(self.sample_type)
        obj.__dict__ = data
        return obj

    def field_decoder(self, name: str) -> Converter:
        """The converter that decodes field ``name`` (identity for fields that need none)."""
        for fname, conv in self._decoders:
            if fname == name:
                return conv
        return _identity

    def check_map(self, data: Any) -> dict[str, Any]:
        """Validate a decoded map for batching: every field checked, arrays left as bytes,
        images decoded to arrays."""
        return self._convert(data, "$", self._checkers)

    def _convert(
        self, data: Any, path: str, converters: list[tuple[str, Converter]]
    ) -> dict[str, Any]:
        if type(data) is not dict:
            raise _type_error(path, f"a {self.schema.name} map", data)
        if data.keys() != self._name_set:
            data = self._normalise_keys(data, path)
        if path == "$":
            paths = self._paths
            for name, conv in converters:
                data[name] = conv(data[name], paths[name])
        else:
            for name, conv in converters:
                data[name] = conv(data[name], f"{path}.{name}")
        return cast(dict[str, Any], data)

    def _normalise_keys(self, data: dict[str, Any], path: str) -> dict[str, Any]:
        prefix = "$." if path == "$" else path + "."
        out: dict[str, Any] = {}
        for name in self.names:
            if name in data:
                out[name] = data[name]
            elif name in self._defaults:
                out[name] = self._defaults[name]()
            elif name in self._optional:
                out[name] = None
            else:
                raise SchemaError(
                    f"{prefix}{name}: missing field (sample has {sorted(data)})", path=prefix + name
                )
        return out


_ZERO_COPY_MIN = 1 << 16


def unpack_map(body: bytes | memoryview, *, views: bool = True) -> dict[str, Any]:
    """Decode a msgpack body that must be a map with str keys.

    With ``views``, large bodies are walked without copying their ``bin`` values, which then come
    back as memoryviews (see ``_msgpack_view``); without it every ``bin`` is ``bytes``.
    """
    try:
        if views and len(body) >= _ZERO_COPY_MIN:
            data = unpack_map_view(memoryview(body))
        else:
            data = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise SchemaError(f"member body is not valid msgpack: {exc}") from None
    if type(data) is not dict:
        raise SchemaError(f"member body is a msgpack {type(data).__name__}, not a map")
    return data


def field_defaults(sample_type: type) -> dict[str, Callable[[], Any]]:
    """Field name -> a callable giving its default, for the dataclass fields that have one."""
    import dataclasses

    out: dict[str, Callable[[], Any]] = {}
    if dataclasses.is_dataclass(sample_type):
        for f in dataclasses.fields(sample_type):
            if f.default is not dataclasses.MISSING:
                out[f.name] = _constant(f.default)
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory
    return out


def _identity(value: Any, _path: str) -> Any:
    return value


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


_SCHEMA_CODECS: dict[Schema, "Codec[Any]"] = {}


def _nested_codec(ftype: FieldType) -> "Codec[Any]":
    """Codec of a nested sample field: its Python type's, else one for a rebuilt type."""
    if ftype.sample_type is not None:
        return codec_for(ftype.sample_type)
    schema = ftype.schema
    assert schema is not None
    codec = _SCHEMA_CODECS.get(schema)
    if codec is None:
        codec = Codec(schema.to_sample_type(), schema)
        _SCHEMA_CODECS[schema] = codec
    return codec


def codec_for(sample_type: type[T]) -> Codec[T]:
    """The codec of a packable type, built on first use and kept on the class."""
    codec = sample_type.__dict__.get("__atdata_codec__")
    if codec is None:
        schema = Schema.from_type(sample_type)
        codec = Codec(sample_type, schema)
        type.__setattr__(sample_type, "__atdata_codec__", codec)
    return cast(Codec[T], codec)
