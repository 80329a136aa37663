"""Random access through the offset index: ``ds[i]`` and ``ds.get(key)``.

Each read takes the sample's bytes with their tar headers (one local read, or one range request
remotely) and parses them, so every header the index points at is checked against the shard:
checksum, name (``key.msgpack`` or the group's key), size and position. Disagreement raises
:class:`~atdata.shards.offsets.SidecarMismatch`: the index does not describe this shard.
"""

import os

from ..errors import ShardError, SourceError
from ..sources import ShardSource
from .offsets import OffsetIndex, SidecarMismatch
from .reader import Body, max_stream_member
from .tar import BLOCK, Member, parse_members, parse_octal, pax_records, split_name

__all__ = ["read_body", "read_group"]

_SAMPLE_SUFFIX = "msgpack"
_MAX_EXTENSION = 1 << 16  # PAX / long-name bodies followed when checking where a group ends


def _read_span(source: ShardSource, start: int, end: int, limit: int | None) -> bytes:
    length = end - start
    path = source.local_path()
    if limit is None and path is None:
        limit = max_stream_member()
    if limit is not None and length > limit:
        raise ShardError(
            f"the offset index puts a sample of {length} bytes here, more than may be read "
            f"({limit} bytes)",
            shard=source.url,
            offset=start,
        )
    if path is not None:
        try:
            with open(path, "rb") as f:
                available = os.fstat(f.fileno()).st_size - start
                f.seek(start)
                return f.read(max(0, min(length, available)))
        except OSError as exc:
            raise SourceError(f"cannot read shard {source.url!r}: {exc.strerror or exc}") from exc
    return source.read_range(start, length)


def _span_members(
    source: ShardSource, index: OffsetIndex, i: int, span: tuple[int, int], limit: int | None
) -> tuple[bytes, list[Member]]:
    """The members in ``span`` of the shard, all of them with sample ``i``'s key, else
    SidecarMismatch: the index does not describe this shard."""
    start, end = span
    key = index.keys[i]
    data = _read_span(source, start, end, limit)
    try:
        if len(data) != end - start:
            raise ShardError(f"the shard ends at byte {start + len(data)}")
        chunk = parse_members(data, 0, len(data), start, source.url, max_members=len(data))
        if chunk.next_offset != len(data) or not chunk.members:
            raise ShardError("the members there do not fill the recorded span")
        for m in chunk.members:
            if split_name(m.name)[0] != key:
                raise ShardError(
                    f"member {m.name!r} at byte {m.header_offset} is not of key {key!r}"
                )
    except ShardError as exc:
        raise SidecarMismatch(
            f"sample {i} (key {key!r}) is not where the offset index puts it: {exc}",
            shard=source.url,
            offset=start,
        ) from None
    return data, chunk.members


def read_body(source: ShardSource, index: OffsetIndex, i: int, *, limit: int | None = None) -> Body:
    """The body of sample ``i``'s ``.msgpack`` member, by its recorded offset (an mmap-free
    read locally, one range read remotely, header included).

    The header is parsed and checked against the index (checksum, name ``key.msgpack``, size):
    SidecarMismatch when they disagree. ``limit`` bounds the bytes read (the shard's known size).
    """
    span = index.member_span(i)
    data, members = _span_members(source, index, i, span, limit)
    member = members[-1]
    header = int(index.header_offsets[i])
    if (
        member.header_offset != header
        or member.size != int(index.sizes[i])
        or (index.starts is None and len(members) != 1)
    ):
        raise SidecarMismatch(
            f"sample {i} (key {index.keys[i]!r}): the member there is not the recorded one",
            shard=source.url,
            offset=header,
        )
    if split_name(member.name)[1] != _SAMPLE_SUFFIX:
        if index.starts is None:
            raise SidecarMismatch(
                f"sample {i}: member {member.name!r} is not a .msgpack member",
                shard=source.url,
                offset=header,
            )
        raise ShardError(
            f"sample {index.keys[i]!r} has no .msgpack member (only e.g. {member.name!r}); "
            "read this shard without a sample type (DictSample)",
            shard=source.url,
            offset=header,
        )
    begin = member.body_offset - span[0]
    return memoryview(data)[begin : begin + member.size]


def read_group(
    source: ShardSource, index: OffsetIndex, i: int, *, limit: int | None = None
) -> dict[str, Body]:
    """Every member of sample ``i`` (its key group) as ``{suffix: body}``, checked like
    :func:`read_body`; what schema-free iteration yields for that sample."""
    span = index.group_span(i)
    data, members = _span_members(source, index, i, span, limit)
    simple = index.starts is None  # then a sample is exactly one `.msgpack` member
    if not any(m.header_offset == int(index.header_offsets[i]) for m in members) or (
        simple and split_name(members[0].name)[1] != _SAMPLE_SUFFIX
    ):
        raise SidecarMismatch(
            f"sample {i} (key {index.keys[i]!r}): the member at the recorded offset is not its",
            shard=source.url,
            offset=int(index.header_offsets[i]),
        )
    if not simple:
        _check_group_ends(source, index, i, span[1], limit)
    view = memoryview(data)
    parts: dict[str, Body] = {}
    for m in members:
        begin = m.body_offset - span[0]
        parts[split_name(m.name)[1]] = view[begin : begin + m.size]
    return parts


def _check_group_ends(
    source: ShardSource, index: OffsetIndex, i: int, end: int, limit: int | None
) -> None:
    """The member after sample ``i``'s span must not share its key (the span would split a
    group). One PAX or GNU long-name header there is followed to the name it gives."""
    if end + BLOCK > index.shard_size:
        return
    after = _read_span(source, end, end + BLOCK, limit)
    name = _regular_name(after)
    if name is None and len(after) == BLOCK and after[156:157] in (b"x", b"L"):
        try:
            size = parse_octal(after[124:136], "size", source.url, end)
        except ShardError:
            return  # reading that sample reports the damage
        if 0 <= size <= _MAX_EXTENSION and end + 2 * BLOCK + size <= index.shard_size:
            padded = size + (-size) % BLOCK
            more = _read_span(source, end + BLOCK, end + 2 * BLOCK + padded, limit)
            body, header = more[:size], more[padded:]
            if after[156:157] == b"x":
                name = pax_records(body, source.url, end).get("path") or _regular_name(header)
            else:
                name = body.split(b"\x00", 1)[0].decode("utf-8", "replace")
    if name is not None and split_name(name)[0] == index.keys[i]:
        raise SidecarMismatch(
            f"sample {i} (key {index.keys[i]!r}) continues past the span the offset index gives it",
            shard=source.url,
            offset=end,
        )


def _regular_name(header: bytes) -> str | None:
    """The name in a regular member's ustar header (None for anything else)."""
    if len(header) < BLOCK or header[156:157] not in (b"0", b"\x00", b"7") or header[0] == 0:
        return None
    name = header[:100].split(b"\x00", 1)[0].decode("utf-8", "replace")
    if header[345] != 0:
        prefix = header[345:500].split(b"\x00", 1)[0].decode("utf-8", "replace")
        name = prefix + "/" + name
    return name
