"""Many small tar members appended to one buffer: the shard writer's fast path.

:class:`MemberAppender` writes ``header + body + padding`` for a batch of members, exactly the
bytes of :func:`~atdata.shards.tar.encode_header`, the body and :func:`~atdata.shards.tar.padding`
(tests pin it), with less Python per member: the size field and its byte sum are computed once per
distinct body size, the checksum field (with the rest of the header) once per distinct checksum,
the names' byte sums in one numpy pass when they are all of one length, and the header is put
together from constant slices of the template instead of a template copy patched in place.
"""

import numpy as np

from .tar import BLOCK, HEADER_TEMPLATE, HEADER_TEMPLATE_SUM, MAX_NAME, ZERO_BLOCK, encode_header

__all__ = ["MemberAppender"]

_MAX_SIZES = 4096  # distinct body sizes remembered
# name (<= 100 bytes) | zero fill, mode, uid, gid | size | mtime | checksum | the rest
_AFTER_NAME = [bytes(MAX_NAME - n) + HEADER_TEMPLATE[100:124] for n in range(MAX_NAME + 1)]
_MTIME = HEADER_TEMPLATE[136:148]
_REST = HEADER_TEMPLATE[156:BLOCK]
_PADS = [ZERO_BLOCK[: (-n) % BLOCK] for n in range(BLOCK)]


class MemberAppender:
    """Appends regular tar members to a bytearray (see the module docstring)."""

    def __init__(self) -> None:
        self._sizes: dict[int, tuple[bytes, int]] = {}
        self._tails: dict[int, bytes] = {}  # checksum -> checksum field + the rest of the header

    def _size(self, size: int) -> tuple[bytes, int]:
        field = b"%011o\x00" % size
        if len(field) != 12 or size < 0:
            encode_header(b"", size)  # raises the usual error
        entry = (field + _MTIME, HEADER_TEMPLATE_SUM + sum(field))
        if len(self._sizes) >= _MAX_SIZES:
            self._sizes.clear()
        self._sizes[size] = entry
        return entry

    def _tail(self, checksum: int) -> bytes:
        tail = b"%06o\x00 " % checksum + _REST
        if len(self._tails) >= _MAX_SIZES:
            self._tails.clear()
        self._tails[checksum] = tail
        return tail

    def append(self, out: bytearray, names: list[bytes], bodies: list[bytes]) -> list[int]:
        """Append one member per (name, body) to ``out``; returns the body sizes. Names must be
        at most 100 bytes (checked first: nothing is appended when one is longer)."""
        lengths = set(map(len, names))
        if lengths and max(lengths) > MAX_NAME:
            raise ValueError(f"a tar member name is longer than {MAX_NAME} bytes")
        if len(lengths) == 1:  # the names' byte sums in one numpy pass
            (width,) = lengths
            joined = np.frombuffer(b"".join(names), dtype=np.uint8)
            name_sums = joined.reshape(len(names), width).sum(axis=1, dtype=np.int64).tolist()
        else:
            name_sums = list(map(sum, names))
        sizes, tails = self._sizes, self._tails
        after, pads = _AFTER_NAME, _PADS
        out_sizes: list[int] = []
        record = out_sizes.append
        for name, body, name_sum in zip(names, bodies, name_sums, strict=True):
            n = len(body)
            entry = sizes.get(n)
            if entry is None:
                entry = self._size(n)
            checksum = entry[1] + name_sum
            tail = tails.get(checksum)
            if tail is None:
                tail = self._tail(checksum)
            out += name
            out += after[len(name)]
            out += entry[0]
            out += tail
            out += body
            out += pads[n & (BLOCK - 1)]
            record(n)
        return out_sizes
