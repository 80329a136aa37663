"""Zero-copy decoding of a top-level msgpack map whose large values are ``bin``.

``msgpack.unpackb`` copies every ``bin`` into a new ``bytes``. For large samples (images, tensors)
that copy dominates, so for big bodies we walk the top-level map ourselves: ``bin`` values come
back as ``memoryview`` slices of the original buffer, and every other value is decoded by msgpack
from its own slice. The walker is bounds-checked; anything it does not understand falls back to
``msgpack.unpackb`` of the whole body.
"""

import struct
from typing import Any

import msgpack

__all__ = ["unpack_map_view"]

_U16 = struct.Struct(">H").unpack_from
_U32 = struct.Struct(">I").unpack_from


class _Unsupported(Exception):
    pass


def unpack_map_view(body: memoryview) -> Any:
    """Decode ``body`` like ``msgpack.unpackb``, but top-level ``bin`` values are memoryviews."""
    try:
        return _walk(body)
    except _Unsupported:
        return msgpack.unpackb(body, raw=False, strict_map_key=True)


def _walk(buf: memoryview) -> Any:
    n = len(buf)
    if n == 0:
        raise _Unsupported
    tag = buf[0]
    if 0x80 <= tag <= 0x8F:
        count, pos = tag & 0x0F, 1
    elif tag == 0xDE and n >= 3:
        count, pos = _U16(buf, 1)[0], 3
    elif tag == 0xDF and n >= 5:
        count, pos = _U32(buf, 1)[0], 5
    else:
        raise _Unsupported
    out: dict[str, Any] = {}
    for _ in range(count):
        end = _skip(buf, pos, n)
        key = msgpack.unpackb(buf[pos:end], raw=False)
        if type(key) is not str:
            raise _Unsupported
        pos = end
        if pos >= n:
            raise _Unsupported
        tag = buf[pos]
        if tag in (0xC4, 0xC5, 0xC6):
            length, start = _bin_extent(buf, pos, tag, n)
            out[key] = buf[start : start + length]
            pos = start + length
        else:
            end = _skip(buf, pos, n)
            out[key] = msgpack.unpackb(buf[pos:end], raw=False, strict_map_key=True)
            pos = end
    if pos != n:
        raise _Unsupported  # trailing bytes: let msgpack produce its own error
    return out


def _bin_extent(buf: memoryview, pos: int, tag: int, n: int) -> tuple[int, int]:
    if tag == 0xC4 and pos + 2 <= n:
        length, start = buf[pos + 1], pos + 2
    elif tag == 0xC5 and pos + 3 <= n:
        length, start = _U16(buf, pos + 1)[0], pos + 3
    elif tag == 0xC6 and pos + 5 <= n:
        length, start = _U32(buf, pos + 1)[0], pos + 5
    else:
        raise _Unsupported
    if start + length > n:
        raise _Unsupported
    return length, start


_FIXED = {0xC0: 1, 0xC2: 1, 0xC3: 1, 0xCA: 5, 0xCB: 9, 0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9}
_FIXED.update({0xD0: 2, 0xD1: 3, 0xD2: 5, 0xD3: 9})


def _skip(buf: memoryview, pos: int, n: int, depth: int = 0) -> int:
    """Position just past the msgpack value at ``pos``."""
    if pos >= n or depth > 64:
        raise _Unsupported
    tag = buf[pos]
    if tag <= 0x7F or tag >= 0xE0:
        end = pos + 1
    elif tag in _FIXED:
        end = pos + _FIXED[tag]
    elif 0xA0 <= tag <= 0xBF:
        end = pos + 1 + (tag & 0x1F)
    elif tag in (0xD9, 0xC4):
        end = pos + 2 + (buf[pos + 1] if pos + 1 < n else n)
    elif tag in (0xDA, 0xC5):
        end = pos + 3 + (_U16(buf, pos + 1)[0] if pos + 3 <= n else n)
    elif tag in (0xDB, 0xC6):
        end = pos + 5 + (_U32(buf, pos + 1)[0] if pos + 5 <= n else n)
    elif 0x90 <= tag <= 0x9F or tag in (0xDC, 0xDD) or 0x80 <= tag <= 0x8F or tag in (0xDE, 0xDF):
        end = _skip_container(buf, pos, n, tag, depth)
    else:
        raise _Unsupported  # ext types and reserved tags
    if end > n:
        raise _Unsupported
    return end


def _skip_container(buf: memoryview, pos: int, n: int, tag: int, depth: int) -> int:
    if 0x90 <= tag <= 0x9F:
        items, pos = tag & 0x0F, pos + 1
    elif 0x80 <= tag <= 0x8F:
        items, pos = 2 * (tag & 0x0F), pos + 1
    elif pos + 3 <= n and tag in (0xDC, 0xDE):
        items, pos = _U16(buf, pos + 1)[0] * (2 if tag == 0xDE else 1), pos + 3
    elif pos + 5 <= n:
        items, pos = _U32(buf, pos + 1)[0] * (2 if tag == 0xDF else 1), pos + 5
    else:
        raise _Unsupported
    if items > n - pos:
        raise _Unsupported  # each item takes at least one byte
    for _ in range(items):
        pos = _skip(buf, pos, n, depth + 1)
    return pos
