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
from .tar import Member, parse_members, split_name

__all__ = ["read_body", "read_group"]

_SAMPLE_SUFFIX = "msgpack"


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
    if not any(m.header_offset == int(index.header_offsets[i]) for m in members):
        raise SidecarMismatch(
            f"sample {i} (key {index.keys[i]!r}): no member at the recorded offset",
            shard=source.url,
            offset=int(index.header_offsets[i]),
        )
    view = memoryview(data)
    parts: dict[str, Body] = {}
    for m in members:
        begin = m.body_offset - span[0]
        parts[split_name(m.name)[1]] = view[begin : begin + m.size]
    return parts
