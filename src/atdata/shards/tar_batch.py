"""Many small tar members appended to one buffer: the shard writer's fast path.

:class:`MemberAppender` writes ``header + body + padding`` for a batch of members, exactly the
bytes of :func:`~atdata.shards.tar.encode_header`, the body and :func:`~atdata.shards.tar.padding`
(tests pin it), with less Python per member: the size field and its byte sum are computed once per
distinct body size, and the header is put together from constant slices of the template instead of
a template copy patched in place.
"""

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

    def _size(self, size: int) -> tuple[bytes, int]:
        field = b"%011o\x00" % size
        if len(field) != 12 or size < 0:
            encode_header(b"", size)  # raises the usual error
        entry = (field + _MTIME, HEADER_TEMPLATE_SUM + sum(field))
        if len(self._sizes) >= _MAX_SIZES:
            self._sizes.clear()
        self._sizes[size] = entry
        return entry

    def append(self, out: bytearray, names: list[bytes], bodies: list[bytes]) -> list[int]:
        """Append one member per (name, body) to ``out``; returns the body sizes. Names must be
        at most 100 bytes (checked first: nothing is appended when one is longer)."""
        if any(len(name) > MAX_NAME for name in names):
            raise ValueError(f"a tar member name is longer than {MAX_NAME} bytes")
        sizes = self._sizes
        after, pads, rest = _AFTER_NAME, _PADS, _REST
        lengths: list[int] = []
        record = lengths.append
        for name, body in zip(names, bodies, strict=True):
            n = len(body)
            entry = sizes.get(n)
            if entry is None:
                entry = self._size(n)
            out += name
            out += after[len(name)]
            out += entry[0]
            out += b"%06o\x00 " % (entry[1] + sum(name))
            out += rest
            out += body
            out += pads[n & (BLOCK - 1)]
            record(n)
        return lengths
