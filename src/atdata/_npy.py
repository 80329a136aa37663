"""Checks on array headers read from shards: ``.npy`` headers parsed here, dtype/shape validated.

A shard's array headers are untrusted. Both layouts we read (the compact layout and ``.npy``, see
docs/format.md §1) are checked here before numpy sees them, so that a hostile header ends in a
:class:`~atdata.errors.SchemaError` rather than whatever numpy raises (or allocates):

- the dtype must be a plain one the writer could have produced: no objects, no fields
  (structured), no subarray, no zero itemsize (``|S0``);
- the shape has at most as many dimensions as numpy supports, no negative dimension, and its byte
  size fits numpy's index type even when another dimension is zero.

``.npy`` headers (versions 1.0, 2.0 and 3.0) are parsed by a small strict parser of the
dictionary literal numpy writes (``{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }``):
nothing is evaluated or unpickled, and the header length is bounded.
"""

import re
import struct
from typing import Any

import numpy as np

from .errors import SchemaError

__all__ = ["MAX_NDIM", "MAX_NPY_HEADER", "check_array_dtype", "check_array_shape", "parse_npy"]

NPY_MAGIC = b"\x93NUMPY"
#: Most dimensions numpy supports (32 before numpy 2, 64 since).
MAX_NDIM = 64 if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else 32
#: Longest ``.npy`` header accepted (numpy writes a few hundred bytes; it refuses above 10000).
MAX_NPY_HEADER = 1 << 16
_MAX_BYTES = int(np.iinfo(np.intp).max)
_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
# the tokens of the header literal: strings without escapes, small ints, booleans, punctuation
_TOKEN = re.compile(r"""\s*(?:'([^'\\]*)'|"([^"\\]*)"|(\d{1,20})L?\b|(True|False)\b|([{}():,]))""")
_KEYS = frozenset({"descr", "fortran_order", "shape"})


def check_array_dtype(dtype: np.dtype[Any], what: str) -> None:
    """SchemaError unless ``dtype`` is a plain dtype an array field can hold."""
    if dtype.hasobject:
        raise SchemaError(f"{what} names an object dtype, which is never decoded")
    if dtype.names is not None:
        raise SchemaError(f"{what} names a structured dtype ({dtype}), which is never decoded")
    if dtype.subdtype is not None:
        raise SchemaError(f"{what} names a subarray dtype ({dtype}), which is never decoded")
    if dtype.itemsize == 0:
        raise SchemaError(f"{what} names the dtype {dtype.str}, whose items have no size")


def check_array_shape(shape: tuple[int, ...], itemsize: int, what: str) -> None:
    """SchemaError unless numpy can build an array of ``shape`` (without allocating it)."""
    if len(shape) > MAX_NDIM:
        raise SchemaError(f"{what} has {len(shape)} dimensions; numpy supports at most {MAX_NDIM}")
    nbytes = itemsize
    for d in shape:
        if d < 0:
            raise SchemaError(f"{what} has a negative dimension {tuple(shape)}")
        if d:
            nbytes *= d  # numpy checks this product even when another dimension is 0
    if nbytes > _MAX_BYTES:
        raise SchemaError(f"{what} describes an array too big to exist: {tuple(shape)}")


def parse_npy(buf: bytes | memoryview) -> tuple[np.dtype[Any], tuple[int, ...], bool, int]:
    """``(dtype, shape, fortran_order, data offset)`` of a ``.npy`` payload, all validated.

    The caller still checks that the bytes after the header hold exactly the array.
    """
    n = len(buf)
    if n < 10 or bytes(buf[:6]) != NPY_MAGIC:
        raise SchemaError(f"bad .npy payload: {n} bytes, too short or no magic")
    version = (buf[6], buf[7])
    if version == (1, 0):
        hlen, start = _U16(buf, 8)[0], 10
    elif version in ((2, 0), (3, 0)):
        if n < 12:
            raise SchemaError("bad .npy payload: header is truncated")
        hlen, start = _U32(buf, 8)[0], 12
    else:
        raise SchemaError(f"bad .npy payload: unsupported format version {version[0]}.{version[1]}")
    if hlen > MAX_NPY_HEADER:
        raise SchemaError(f"bad .npy payload: header of {hlen} bytes (at most {MAX_NPY_HEADER})")
    end = start + hlen
    if end > n:
        raise SchemaError(f"bad .npy payload: header of {hlen} bytes but {n - start} follow")
    try:
        text = bytes(buf[start:end]).decode("utf-8" if version == (3, 0) else "latin-1")
    except UnicodeDecodeError as exc:
        raise SchemaError(f"bad .npy payload: header is not UTF-8 ({exc})") from None
    header = _parse_header(text)
    descr = header["descr"]
    if not isinstance(descr, str):
        raise SchemaError(f"bad .npy payload: descr {descr!r} is not a dtype string")
    try:
        dtype = np.dtype(descr)
    except Exception as exc:  # numpy's dtype parser raises several unrelated types
        raise SchemaError(f"bad .npy payload: unknown dtype {descr[:64]!r}") from exc
    check_array_dtype(dtype, ".npy header")
    shape = header["shape"]
    fortran = header["fortran_order"]
    if not isinstance(shape, tuple) or not isinstance(fortran, bool):
        raise SchemaError("bad .npy payload: shape must be a tuple, fortran_order a bool")
    check_array_shape(shape, dtype.itemsize, ".npy header")
    return dtype, shape, fortran, end


def _parse_header(text: str) -> dict[str, Any]:
    """The header dictionary literal: str keys; str, bool or tuple-of-int values; nothing else."""
    tokens = _tokens(text)
    out: dict[str, Any] = {}
    pos = _expect(tokens, 0, "{")
    while tokens[pos] != ("p", "}"):
        kind, key = tokens[pos]
        if kind != "s" or key not in _KEYS or key in out:
            raise _malformed(text, f"unexpected key {key!r}")
        pos = _expect(tokens, pos + 1, ":")
        kind, value = tokens[pos]
        if kind in ("s", "b"):
            out[key], pos = value, pos + 1
        elif (kind, value) == ("p", "("):
            out[key], pos = _parse_shape(tokens, pos + 1, text)
        else:
            raise _malformed(text, f"unexpected value for {key!r}")
        if tokens[pos] == ("p", ","):
            pos += 1
        elif tokens[pos] != ("p", "}"):
            raise _malformed(text, "expected ',' or '}'")
    if pos + 1 != len(tokens) - 1:  # only the end marker may follow the closing brace
        raise _malformed(text, "text after the closing brace")
    if out.keys() != _KEYS:
        raise _malformed(text, f"keys {sorted(out)} instead of {sorted(_KEYS)}")
    return out


def _parse_shape(tokens: list[tuple[str, Any]], pos: int, text: str) -> tuple[tuple[int, ...], int]:
    dims: list[int] = []
    while tokens[pos] != ("p", ")"):
        kind, value = tokens[pos]
        if kind != "i" or len(dims) > MAX_NDIM:
            raise _malformed(text, "shape must be a tuple of non-negative integers")
        dims.append(value)
        pos += 1
        if tokens[pos] == ("p", ","):
            pos += 1
        elif tokens[pos] != ("p", ")"):
            raise _malformed(text, "expected ',' or ')' in the shape")
    return tuple(dims), pos + 1


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    stripped = text.rstrip()
    while pos < len(stripped):
        m = _TOKEN.match(stripped, pos)
        if m is None:
            if stripped[pos:].lstrip().startswith("["):
                raise SchemaError(
                    ".npy payload holds a structured array (its descr is a list of fields), "
                    "which is never decoded; store each field as its own array"
                )
            raise _malformed(text, f"unexpected text at character {pos}")
        single, double, number, boolean, punct = m.groups()
        if single is not None or double is not None:
            out.append(("s", single if single is not None else double))
        elif number is not None:
            out.append(("i", int(number)))
        elif boolean is not None:
            out.append(("b", boolean == "True"))
        else:
            out.append(("p", punct))
        pos = m.end()
    out.append(("end", None))
    return out


def _expect(tokens: list[tuple[str, Any]], pos: int, punct: str) -> int:
    if tokens[pos] != ("p", punct):
        raise SchemaError(f"bad .npy payload: malformed header (expected {punct!r})")
    return pos + 1


def _malformed(text: str, why: str) -> SchemaError:
    return SchemaError(f"bad .npy payload: malformed header ({why}): {text[:80]!r}")
