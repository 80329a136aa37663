"""Reading members out of shards: mmap for local files, large buffered reads for streams.

:func:`iter_members` yields ``(member, body)`` pairs where ``body`` is a zero-copy memoryview
into the mapped file (local) or a bytes object (streams). Headers are parsed in chunks and their
checksums verified in bulk; truncation and corruption raise :class:`ShardError` naming the shard
and the member's byte offset. Nothing is allocated in proportion to a size field before the bytes
it promises have actually arrived.
"""

import contextlib
import mmap
import os
from collections.abc import Iterator
from typing import Any, BinaryIO

from ..errors import ShardError, SourceError
from ..sources import ShardSource, open_source
from .offsets import OFFSETS_SUFFIX, OffsetIndex
from .tar import BLOCK, Member, _octal, parse_members

__all__ = ["iter_members", "load_offsets", "read_body", "scan_offsets"]

_STREAM_CHUNK = 4 << 20

Body = memoryview | bytes


def iter_members(
    source: ShardSource | str, *, start_offset: int = 0
) -> Iterator[tuple[Member, Body]]:
    """Regular members of a shard with their bodies, from byte ``start_offset`` (a header)."""
    src = open_source(source) if isinstance(source, str) else source
    path = src.local_path()
    if path is not None:
        yield from _iter_mapped(path, src.url, start_offset)
    else:
        stream = src.open()
        try:
            if start_offset:
                _skip_stream(stream, start_offset, src.url)
            yield from _iter_stream(stream, src.url, start_offset)
        finally:
            stream.close()


def _map_file(path: str, url: str) -> Any:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                return b""
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise SourceError(f"cannot open shard {url!r}: {exc.strerror or exc}") from exc
    with contextlib.suppress(AttributeError, OSError):
        mm.madvise(mmap.MADV_SEQUENTIAL)
    return mm


def _iter_mapped(path: str, url: str, start: int) -> Iterator[tuple[Member, Body]]:
    mm = _map_file(path, url)
    end = len(mm)
    view = memoryview(mm)  # bodies are slices of it; arrays decoded from them share the mapping
    pos = start
    while True:
        chunk = parse_members(mm, pos, end, 0, url)
        for m in chunk.members:
            yield m, view[m.body_offset : m.body_offset + m.size]
        if chunk.at_end:
            return
        if chunk.next_offset == pos and not chunk.members:
            _raise_truncated(mm, pos, end, url)
            return
        pos = chunk.next_offset


def _raise_truncated(buf: Any, pos: int, end: int, url: str, base: int = 0) -> None:
    """Called when no complete member starts at ``pos``: fine at EOF, else truncation.

    ``pos`` and ``end`` are positions in ``buf``, whose first byte is shard byte ``base``.
    """
    if pos >= end:
        return  # no end-of-archive blocks: tolerated, as GNU tar does
    if end - pos < BLOCK:
        if bytes(buf[pos:end]).strip(b"\x00"):
            raise ShardError(
                f"shard ends inside a tar header ({end - pos} stray bytes)",
                shard=url,
                offset=base + pos,
            )
        return
    raise ShardError(
        f"member is truncated: the shard ends at byte {base + end} before the member does",
        shard=url,
        offset=base + pos,
    )


def _skip_stream(stream: BinaryIO, count: int, url: str) -> None:
    try:
        stream.seek(count)
        return
    except (OSError, AttributeError, ValueError):
        pass
    while count:
        got = stream.read(min(count, _STREAM_CHUNK))
        if not got:
            raise ShardError("shard ended before the resume position", shard=url, offset=count)
        count -= len(got)


def _iter_stream(stream: BinaryIO, url: str, base: int) -> Iterator[tuple[Member, Body]]:
    buf = b""
    pos = 0  # position in buf
    eof = False
    need = _STREAM_CHUNK
    while True:
        if not eof and len(buf) - pos < need:
            buf, eof = _refill(stream, buf[pos:], max(_STREAM_CHUNK, need - (len(buf) - pos)), url)
            base += pos
            pos = 0
        chunk = parse_members(buf, pos, len(buf), base, url)
        view = memoryview(buf)
        for m in chunk.members:
            start = m.body_offset - base
            yield m, view[start : start + m.size]
        if chunk.at_end:
            return
        progressed = chunk.next_offset != pos or chunk.members
        pos = chunk.next_offset
        if not progressed:
            if eof:
                _raise_truncated(buf, pos, len(buf), url, base)
                return
            # the next member is larger than what is buffered (its header's checksum was
            # verified by parse_members): ask for all of it, and always for more than is held
            need = max(_member_extent(buf, pos), len(buf) - pos + 1)
        else:
            need = BLOCK


def _refill(stream: BinaryIO, kept: bytes, count: int, url: str) -> tuple[bytes, bool]:
    """``kept`` plus up to ``count`` more bytes of ``stream``, and whether it ended.

    Reads are at most one chunk each, so memory grows with the bytes that actually arrive,
    never with what a size field promises.
    """
    parts = [kept]
    while count > 0:
        got = _read(stream, min(count, _STREAM_CHUNK), url)
        if not got:
            return b"".join(parts), True
        parts.append(got)
        count -= len(got)
    return b"".join(parts), False


def _member_extent(buf: bytes, pos: int) -> int:
    if len(buf) - pos < BLOCK:
        return BLOCK
    try:
        size = _octal(buf[pos + 124 : pos + 136], "size", "", pos)
    except ShardError:
        return 2 * BLOCK
    return BLOCK + max(size, 0) + (-size) % BLOCK


def _read(stream: BinaryIO, n: int, url: str) -> bytes:
    try:
        return stream.read(n)
    except OSError as exc:
        raise SourceError(f"reading shard {url!r} failed: {exc}") from exc


def load_offsets(source: ShardSource) -> OffsetIndex | None:
    """The shard's offset-index sidecar, or None when it has none."""
    data = source.read_sidecar(OFFSETS_SUFFIX)
    if data is None:
        return None
    return OffsetIndex.from_bytes(data, f"{source.url}{OFFSETS_SUFFIX}")


def scan_offsets(source: ShardSource, suffix: str = "msgpack") -> OffsetIndex:
    """Build an offset index by reading the whole shard (for shards without a sidecar)."""
    import numpy as np

    keys: list[str] = []
    offsets: list[int] = []
    sizes: list[int] = []
    last = 0
    for m, _body in iter_members(source):
        last = m.body_offset + m.size
        key, _, sfx = m.name.rpartition("/")[2].partition(".")
        if sfx == suffix:
            keys.append(m.key)
            offsets.append(m.header_offset)
            sizes.append(m.size)
        del key
    return OffsetIndex(
        keys,
        np.asarray(offsets, dtype=np.int64),
        np.asarray(sizes, dtype=np.int64),
        shard_size=max(last, 0),
    )


def read_body(source: ShardSource, index: OffsetIndex, i: int) -> Body:
    """The body of member ``i`` by its recorded offset: an mmap slice locally, a range read else."""
    offset, size = index.body_range(i)
    path = source.local_path()
    if path is not None:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
    else:
        data = source.read_range(offset, size)
    if len(data) != size:
        raise ShardError("member body is truncated", shard=source.url, offset=offset - BLOCK)
    return data
