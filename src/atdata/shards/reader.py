"""Reading members out of shards: mmap for local files, large buffered reads for streams.

:func:`iter_members` yields ``(member, body)`` pairs where ``body`` is a zero-copy memoryview
into the mapped file (local) or a bytes object (streams). Headers are parsed in chunks and their
checksums verified in bulk; truncation and corruption raise :class:`ShardError` naming the shard
and the member's byte offset. Nothing is allocated in proportion to a size field before the bytes
it promises have actually arrived.
"""

import contextlib
import io
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from ..errors import ShardError, SourceError
from ..sources import ShardSource, open_source
from .offsets import OFFSETS_SUFFIX, OffsetIndex
from .tar import BLOCK, Member, _octal, parse_members, split_name, verify_indexed_headers

__all__ = ["iter_members", "load_offsets", "read_body", "scan_offsets"]

_STREAM_CHUNK = 4 << 20
_FIRST_CHUNK = 64  # members parsed before the first samples are handed on
_MAX_CHUNK = 4096
_STREAM_SAMPLE_CHUNK = 256
_SAMPLE_SUFFIX = "msgpack"

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
    for members, view in _mapped_member_chunks(path, url, start):
        for m in members:
            yield m, view[m.body_offset : m.body_offset + m.size]


def _mapped_member_chunks(path: str, url: str, start: int) -> Iterator[tuple[list[Member], Any]]:
    """Chunks of parsed members with the memoryview their bodies lie in.

    Chunks start small and grow, so the first samples arrive after a few headers are parsed.
    """
    mm = _map_file(path, url)
    end = len(mm)
    view = memoryview(mm)  # bodies are slices of it; arrays decoded from them share the mapping
    pos = start
    chunk_size = _FIRST_CHUNK
    while True:
        chunk = parse_members(mm, pos, end, 0, url, max_members=chunk_size)
        chunk_size = min(chunk_size * 4, _MAX_CHUNK)
        yield chunk.members, view
        if chunk.at_end:
            return
        if chunk.next_offset == pos and not chunk.members:
            _raise_truncated(mm, pos, end, url)
            return
        pos = chunk.next_offset


@dataclass(slots=True)
class SampleChunk:
    """Consecutive sample members (``<key>.msgpack``) of one shard."""

    keys: list[str]
    bodies: list[Body]
    offsets: list[int]  # header offsets, for error messages


def iter_sample_chunks(
    source: ShardSource, *, offsets: OffsetIndex | None = None, start_offset: int = 0
) -> Iterator[SampleChunk]:
    """The shard's sample members in chunks: the batch-level read path.

    A local shard whose offset index matches it is read through the index: header checksums
    and size fields are verified in bulk against it and bodies are sliced straight out of the
    mapping, with no per-member header parsing. Anything else is parsed member by member.
    """
    path = source.local_path()
    if path is not None and offsets is not None:
        yield from _indexed_chunks(path, source.url, offsets, start_offset)
        return
    if path is not None:
        for members, view in _mapped_member_chunks(path, source.url, start_offset):
            chunk = SampleChunk([], [], [])
            for m in members:
                key, suffix = split_name(m.name)
                if suffix == _SAMPLE_SUFFIX:
                    chunk.keys.append(key)
                    chunk.bodies.append(view[m.body_offset : m.body_offset + m.size])
                    chunk.offsets.append(m.header_offset)
            yield chunk
        return
    chunk = SampleChunk([], [], [])
    try:
        for m, body in iter_members(source, start_offset=start_offset):
            key, suffix = split_name(m.name)
            if suffix == _SAMPLE_SUFFIX:
                chunk.keys.append(key)
                chunk.bodies.append(body)
                chunk.offsets.append(m.header_offset)
                if len(chunk.keys) >= _STREAM_SAMPLE_CHUNK:
                    yield chunk
                    chunk = SampleChunk([], [], [])
    except ShardError:
        if chunk.keys:
            yield chunk  # the good samples before the damage first
        raise
    if chunk.keys:
        yield chunk


def _indexed_chunks(
    path: str, url: str, index: OffsetIndex, start_offset: int
) -> Iterator[SampleChunk]:
    mm = _map_file(path, url)
    if len(mm) != index.shard_size:
        # the sidecar belongs to another version of this file: parse instead
        yield from iter_sample_chunks(FileShard(path, url), start_offset=start_offset)
        return
    view = memoryview(mm)
    header_offsets = index.header_offsets
    sizes = index.sizes
    first = int(np.searchsorted(header_offsets, start_offset)) if start_offset else 0
    n = len(index.keys)
    chunk_size = _FIRST_CHUNK
    i = first
    while i < n:
        j = min(n, i + chunk_size)
        chunk_size = min(chunk_size * 4, _MAX_CHUNK)
        offs = header_offsets[i:j]
        sz = sizes[i:j]
        bad = verify_indexed_headers(mm, offs, sz)
        good = len(offs) if bad is None else bad
        offset_list = offs[:good].tolist()
        if good:
            yield SampleChunk(
                index.keys[i : i + good],
                [
                    view[o + BLOCK : o + BLOCK + s]
                    for o, s in zip(offset_list, sz[:good].tolist(), strict=True)
                ],
                offset_list,
            )
        if bad is not None:
            # the member parser reports exactly what is wrong from there on
            yield from iter_sample_chunks(FileShard(path, url), start_offset=int(offs[bad]))
            return
        i = j


class FileShard:
    """A minimal local ShardSource for re-reading a file we already know is local."""

    def __init__(self, path: str, url: str) -> None:
        self.path = path
        self.url = url

    def local_path(self) -> str | None:
        return self.path

    def open(self) -> BinaryIO:
        return open(self.path, "rb")

    def read_range(self, start: int, length: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(length)

    def read_sidecar(self, suffix: str) -> bytes | None:
        return None


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
    buf: bytes | bytearray = b""
    pos = 0  # position in buf
    eof = False
    need = _STREAM_CHUNK
    while True:
        if not eof and len(buf) - pos < need:
            # a new buffer each time: the views handed out below keep pointing into the old one
            with memoryview(buf) as old:
                buf, eof = _refill(
                    stream, old[pos:], max(_STREAM_CHUNK, need - (len(buf) - pos)), url
                )
            base += pos
            pos = 0
        chunk = parse_members(buf, pos, len(buf), base, url)
        view = memoryview(buf).toreadonly()
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
            need = max(_member_extent(bytes(buf[pos : pos + BLOCK]), 0), len(buf) - pos + 1)
        else:
            need = BLOCK


def _refill(stream: BinaryIO, kept: memoryview, count: int, url: str) -> tuple[bytearray, bool]:
    """A new buffer of ``kept`` plus up to ``count`` more bytes of ``stream``, and whether it ended.

    The bytes are read straight into the new buffer (``readinto``, when the stream has it), so
    each byte is copied once on its way from the stream. The buffer grows one chunk at a time,
    so memory grows with the bytes that actually arrive, never with what a size field promises.
    The buffer is never written again once returned: views into it are handed to the caller.
    """
    readinto = getattr(stream, "readinto", None)
    held = len(kept)
    buf = bytearray(held + min(count, _STREAM_CHUNK))
    buf[:held] = kept
    filled = held
    end = held + count
    eof = False
    while filled < end:
        if filled == len(buf):  # full but more was asked for: grow by another chunk
            buf.extend(bytes(min(end - filled, _STREAM_CHUNK)))
        with memoryview(buf) as view, view[filled:] as room:
            if readinto is None:
                got = _read(stream, len(room), url)
                room[: len(got)] = got
                n = len(got)
            else:
                try:
                    n = int(readinto(room) or 0)
                except (NotImplementedError, io.UnsupportedOperation):
                    readinto = None  # a stream that only implements read(): use that
                    continue
                except OSError as exc:
                    raise SourceError(f"reading shard {url!r} failed: {exc}") from exc
        if not n:
            eof = True
            break
        filled += n
    if filled < len(buf):
        del buf[filled:]
    return buf, eof


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
