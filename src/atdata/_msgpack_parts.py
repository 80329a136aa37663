"""A msgpack map packed in pieces, so that large binary values are not copied through msgpack.

``pack_map_parts(packer, data, large)`` returns buffers whose concatenation is exactly
``packer.pack(data)`` (``use_bin_type=True``), except that each value of ``large`` (a field
name -> (prefix bytes, array)) is packed as one msgpack ``bin`` whose body is the prefix
followed by the array's bytes: the array is copied once (``tobytes``), not three times (into a
``bytes`` value, into msgpack's buffer, out of it).
"""

import struct
from typing import Any

import msgpack
import numpy as np

__all__ = ["bin_header", "pack_map_parts"]


def bin_header(size: int) -> bytes:
    """The msgpack ``bin`` header for a body of ``size`` bytes (what msgpack itself writes)."""
    if size < 1 << 8:
        return b"\xc4" + bytes((size,))
    if size < 1 << 16:
        return b"\xc5" + struct.pack(">H", size)
    if size < 1 << 32:
        return b"\xc6" + struct.pack(">I", size)
    raise ValueError(f"a msgpack bin holds less than 4 GiB, not {size} bytes")


def pack_map_parts(
    packer: msgpack.Packer,
    data: dict[str, Any],
    large: dict[str, tuple[bytes, np.ndarray[Any, Any]]],
) -> list[bytes]:
    """``data`` packed as a map, each of ``large``'s fields as a bin of prefix + array bytes."""
    head = bytearray(packer.pack_map_header(len(data)))
    parts: list[bytes] = []
    for key, value in data.items():
        head += packer.pack(key)
        if key in large:
            prefix, array = large[key]
            head += bin_header(len(prefix) + array.nbytes)
            head += prefix
            parts.append(bytes(head))
            head = bytearray()
            parts.append(array.tobytes())  # C order, as encode_array writes it
        else:
            head += packer.pack(value)
    if head:
        parts.append(bytes(head))
    return parts
