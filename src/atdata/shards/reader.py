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
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from .._redact import redact
from ..errors import AtdataWarning, ShardError, SourceError
from ..net.readahead import read_ahead
from ..sources import ShardSource, open_source
from ..sources.base import register_sidecar_builder
from .offsets import OFFSETS_SUFFIX, OffsetIndex
from .tar import (
    BLOCK,
    ZERO_BLOCK,
    Member,
    header_checksum_ok,
    parse_members,
    parse_octal,
    split_name,
    verify_indexed_headers,
)

__all__ = [
    "Body",
    "SampleChunk",
    "iter_members",
    "iter_sample_chunks",
    "load_offsets",
    "max_stream_member",
    "scan_offsets",
]

_STREAM_CHUNK = 4 << 20
_READY_STEP = 1 << 20  # first buffer size for streams that can say what is ready (see _refill)
_READY_UNTIL = 16 << 20  # how far into a stream it is parsed as its bytes arrive
_FIRST_CHUNK = 64  # members parsed before the first samples are handed on
_MAX_CHUNK = 4096
_STREAM_SAMPLE_CHUNK = 256
# stream buffers kept for reuse: a batch of _STREAM_SAMPLE_CHUNK samples can hold views into
# ~10 buffers of _STREAM_CHUNK (B3: 150 KB samples), released together when the batch is done
_SPENT_BUFFERS = 16
# room a fresh stream buffer is allocated with beyond its size: a reused buffer grows by the
# bytes kept from the previous one (a partial member) without a reallocation, which would copy it
_HEADROOM = 512 << 10
_SAMPLE_SUFFIX = "msgpack"

Body = memoryview | bytes
_DEFAULT_MAX_STREAM_MEMBER = 1 << 30


def max_stream_member() -> int:
    """The largest member read from a stream of unknown size (``ATDATA_MAX_MEMBER_BYTES``).

    A streamed member must be held whole in memory; without a recorded shard size to bound it,
    a size field above this is refused before any of its bytes are buffered. Default 1 GiB.
    """
    text = os.environ.get("ATDATA_MAX_MEMBER_BYTES", "")
    try:
        value = int(text) if text.strip() else _DEFAULT_MAX_STREAM_MEMBER
    except ValueError:
        value = _DEFAULT_MAX_STREAM_MEMBER
    return max(value, BLOCK)


def iter_members(
    source: ShardSource | str, *, start_offset: int = 0, max_size: int | None = None
) -> Iterator[tuple[Member, Body]]:
    """Regular members of a shard with their bodies, from byte ``start_offset`` (a header).

    ``max_size`` is the shard's known size (from its record), when there is one: a streamed
    shard is never buffered past it. Without it a streamed member may be at most
    :func:`max_stream_member` bytes.
    """
    src = open_source(source) if isinstance(source, str) else source
    path = src.local_path()
    if path is not None:
        yield from _iter_mapped(path, src.url, start_offset)
    else:
        stream = src.open()
        try:
            if start_offset:
                _skip_stream(stream, start_offset, src.url)  # a seek where the stream can
            stream = read_ahead(stream)  # off unless $ATDATA_READAHEAD asks for it
            yield from _iter_stream(stream, src.url, start_offset, max_size)
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
    source: ShardSource,
    *,
    offsets: OffsetIndex | None = None,
    start_offset: int = 0,
    max_size: int | None = None,
) -> Iterator[SampleChunk]:
    """The shard's sample members in chunks: the batch-level read path.

    A local shard whose offset index matches it is read through the index: header checksums,
    names and size fields are verified in bulk against it and bodies are sliced straight out of
    the mapping, with no per-member header parsing. Anything else is parsed member by member.
    """
    path = source.local_path()
    if path is not None and offsets is not None and offsets.bulk_names() is not None:
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
    held = 0  # body bytes in chunk: large samples are handed on before 256 of them arrive
    try:
        for m, body in iter_members(source, start_offset=start_offset, max_size=max_size):
            key, suffix = split_name(m.name)
            if suffix == _SAMPLE_SUFFIX:
                chunk.keys.append(key)
                chunk.bodies.append(body)
                chunk.offsets.append(m.header_offset)
                held += m.size
                if len(chunk.keys) >= _STREAM_SAMPLE_CHUNK or held >= _STREAM_CHUNK:
                    yield chunk
                    chunk = SampleChunk([], [], [])
                    held = 0
    except ShardError:
        if chunk.keys:
            yield chunk  # the good samples before the damage first
        raise
    if chunk.keys:
        yield chunk


def _indexed_chunks(
    path: str, url: str, index: OffsetIndex, start_offset: int
) -> Iterator[SampleChunk]:
    """Samples sliced through the offset index, each header it points at checked in bulk.

    The index is only used when its members lie back to back from byte 0
    (:meth:`OffsetIndex.bulk_names`), so checking every header's checksum, type, size and name
    (``key.msgpack``) and the end-of-archive after the last one proves it lists exactly what a
    parser would find. At the first disagreement the good samples before it are handed out and
    the shard is parsed from there (a true member boundary), with a warning.
    """
    mm = _map_file(path, url)
    names = index.bulk_names()
    if len(mm) != index.shard_size or names is None:
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
        bad = verify_indexed_headers(mm, offs, sz, names[i:j])
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
            at = int(offs[bad])
            if at + BLOCK <= len(mm) and header_checksum_ok(mm, at):
                yield from _parse_rest(path, url, at, f"member {i + bad}")
            else:  # a damaged header: the parser reports the damage itself
                yield from iter_sample_chunks(FileShard(path, url), start_offset=at)
            return
        i = j
    end = int(header_offsets[-1]) + BLOCK + int(sizes[-1]) + (-int(sizes[-1])) % BLOCK if n else 0
    if end < len(mm) and (end + BLOCK > len(mm) or mm[end : end + BLOCK] != ZERO_BLOCK):
        yield from _parse_rest(path, url, end, "what follows its last member")


def _parse_rest(path: str, url: str, offset: int, what: str) -> Iterator[SampleChunk]:
    warnings.warn(
        redact(
            f"offset index {url}{OFFSETS_SUFFIX} disagrees with the shard at {what} (byte "
            f"{offset}); reading the rest of the shard by parsing it. Rebuild or remove the sidecar."
        ),
        AtdataWarning,
        stacklevel=4,
    )
    yield from iter_sample_chunks(FileShard(path, url), start_offset=offset)


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


def _iter_stream(
    stream: BinaryIO, url: str, base: int, max_size: int | None = None
) -> Iterator[tuple[Member, Body]]:
    buf: bytes | bytearray = b""
    pos = 0  # position in buf
    eof = False
    need = BLOCK
    member_cap = max_stream_member()
    spent: list[bytearray] = []  # buffers parsed already, reused once nothing points into them
    while True:
        if not eof and len(buf) - pos < need:
            # another buffer each time: the views handed out below keep pointing into the old one
            short = need - (len(buf) - pos)
            # the first bytes are parsed as they come (the first batch); then in big buffers
            early = short if base + pos < _READY_UNTIL else None
            with memoryview(buf) as old:
                fresh, eof = _refill(
                    stream, old[pos:], max(_STREAM_CHUNK, short), url, spent, least=early
                )
            if isinstance(buf, bytearray):
                spent.append(buf)
                if len(spent) > _SPENT_BUFFERS:
                    del spent[0]
            buf = fresh
            base += pos
            pos = 0
            if max_size is not None and base + len(buf) > max_size:
                raise ShardError(
                    f"shard is longer than its recorded size of {max_size} bytes",
                    shard=url,
                    offset=max_size,
                )
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
            # verified by parse_members): ask for all of it, and always for more than is held,
            # but never for more than the shard's known size or the streamed-member cap allow
            extent = _member_extent(bytes(buf[pos : pos + BLOCK]), 0)
            _check_extent(extent, base + pos, max_size, member_cap, url)
            need = max(extent, len(buf) - pos + 1)
        else:
            need = BLOCK


def _check_extent(extent: int, offset: int, max_size: int | None, cap: int, url: str) -> None:
    if max_size is not None:
        if offset + extent > max_size:
            raise ShardError(
                f"member of {extent - BLOCK} bytes extends past the shard's recorded size "
                f"of {max_size} bytes",
                shard=url,
                offset=offset,
            )
    elif extent > cap + BLOCK:
        raise ShardError(
            f"member of {extent - BLOCK} bytes is larger than a streamed member may be "
            f"({cap} bytes; ATDATA_MAX_MEMBER_BYTES raises it)",
            shard=url,
            offset=offset,
        )


def _refill(
    stream: BinaryIO,
    kept: memoryview,
    count: int,
    url: str,
    spent: list[bytearray] | None = None,
    *,
    least: int | None = None,
) -> tuple[bytearray, bool]:
    """A buffer of ``kept`` plus up to ``count`` more bytes of ``stream``, and whether it ended.

    A stream that can tell whether more bytes are there without waiting (``ready()``: a
    download running ahead on its own thread) is only waited on for ``least`` bytes: once that
    many arrived and it has nothing ready, what arrived is parsed (the first samples of a slow
    download are not held back until ``count`` bytes are in).

    The bytes are read straight into the buffer (``readinto``, when the stream has it), so
    each byte is copied once on its way from the stream. The buffer grows one chunk at a time,
    so memory grows with the bytes that actually arrive, never with what a size field promises.
    The buffer is never written again while anything points into it: it is one of ``spent``
    only when no view of it (a member body, an array decoded from one) is left, else new.
    """
    readinto = getattr(stream, "readinto", None)
    ready = getattr(stream, "ready", None) if least is not None else None
    held = len(kept)
    # a stream that may hand over less starts in a smaller buffer, grown while more is ready
    step = _STREAM_CHUNK if ready is None else max(least or 0, _READY_STEP)
    size = held + min(count, step)
    buf = _unused(spent, size) if spent else None
    if buf is None:
        buf = bytearray(size + _HEADROOM)
        del buf[size:]  # the allocation stays (a shrink by less than half never reallocates)
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
        if ready is not None and filled - held >= (least or 0) and not ready():
            break
    if filled < len(buf):
        del buf[filled:]
    return buf, eof


def _unused(spent: list[bytearray], size: int) -> bytearray | None:
    """One of ``spent`` that nothing points into any more, taken out and resized to ``size``.

    Every view of a bytearray (a memoryview, a slice of one, a numpy array over one) is an
    export of it, and a bytearray with exports cannot change size: the resize below succeeds
    only for a buffer whose bytes nobody can see. Only this reader holds the buffer itself, so
    no new view of it can appear once it has none.
    """
    for i, buf in enumerate(spent):
        if not buf:
            continue  # deleting from an empty buffer deletes nothing, so it cannot probe views
        try:
            # raises BufferError while any view of it exists; shrinking by a byte never moves
            # the buffer (an append to an exactly-sized one reallocates: a copy of megabytes)
            del buf[-1:]
        except BufferError:
            continue
        del spent[i]
        if len(buf) > size:
            del buf[size:]
        elif len(buf) < size:
            buf.extend(bytes(size - len(buf)))
        return buf
    return None


def _member_extent(buf: bytes, pos: int) -> int:
    if len(buf) - pos < BLOCK:
        return BLOCK
    try:
        size = parse_octal(buf[pos + 124 : pos + 136], "size", "", pos)
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


def scan_offsets(
    source: ShardSource, suffix: str = _SAMPLE_SUFFIX, *, max_size: int | None = None
) -> OffsetIndex:
    """Build an offset index by reading the whole shard (for shards without a usable sidecar).

    A sample is a key group (consecutive members sharing a key, as schema-free iteration groups
    them); its member is the first ``.<suffix>`` one, else its first member. Group spans are
    kept only when some sample is not exactly one ``.<suffix>`` member.
    """
    keys: list[str] = []
    offsets: list[int] = []
    sizes: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    simple = True
    current: str | None = None
    has_sample = False
    members_in_group = 0
    last_end = 0
    for m, _body in iter_members(source, max_size=max_size):
        key, sfx = split_name(m.name)
        end = m.body_offset + m.size + (-m.size) % BLOCK
        if key != current or not keys:
            current, has_sample, members_in_group = key, False, 0
            keys.append(key)
            offsets.append(m.header_offset)
            sizes.append(m.size)
            starts.append(last_end)
            ends.append(end)
            if last_end != m.header_offset:
                simple = False
        members_in_group += 1
        if sfx == suffix and not has_sample:
            has_sample = True
            offsets[-1], sizes[-1] = m.header_offset, m.size
        if members_in_group > 1 or sfx != suffix:
            simple = False
        ends[-1] = last_end = end
    path = source.local_path()
    shard_size = last_end
    if path is not None:
        with contextlib.suppress(OSError):
            shard_size = max(os.path.getsize(path), last_end)
    return OffsetIndex(
        keys,
        as_array(offsets),
        as_array(sizes),
        shard_size=shard_size,
        starts=None if simple else as_array(starts),
        ends=None if simple else as_array(ends),
    )


def as_array(values: list[int]) -> "np.ndarray[Any, np.dtype[np.int64]]":
    return np.asarray(values, dtype=np.int64)


def _offsets_sidecar(source: ShardSource) -> bytes:
    """The offset-index sidecar of a source that carries none, built from its bytes."""
    return scan_offsets(source).to_bytes()


register_sidecar_builder(OFFSETS_SUFFIX, _offsets_sidecar)
