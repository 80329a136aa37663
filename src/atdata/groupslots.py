"""Reading whole key groups by (shard, member number), for member-layout sample types.

A sample of a member-layout shard is several tar members sharing a key; the offset index
records each group's byte span (format version 2). A local shard is parsed once per reader
(every header checked, as a sequential read does) into a table of its groups' member bodies,
which are views of the mapped file; the table must agree with the offset index (same keys in
the same order, each group inside its recorded span), else the shard's samples fail with a
:class:`~atdata.shards.offsets.SidecarMismatch`. A few tables are kept (least recently used
first out). Remote shards fetch the span of the groups one read wants with one range request
(up to 32 MiB; every member checked against the index), else each group's span with its
headers (:func:`~atdata.shards.access.read_group`). Either way a sample comes out as
``{extension: bytes}``, in the same :class:`~atdata.slots.SlotRead` shape as the msgpack reader.
"""

from collections import OrderedDict
from typing import Any

import numpy as np

from .errors import ShardError
from .shards.access import read_group
from .shards.offsets import OffsetIndex, SidecarMismatch
from .shards.reader import iter_members
from .shards.shardset import ShardSet
from .shards.tar import parse_members, split_name
from .slots import SlotRead

__all__ = ["GroupSlotReader"]

_TABLES = 8  # shards whose member tables are kept
_REMOTE_SPAN = 32 << 20  # the most one range request fetches for a run of remote groups
Table = list[dict[str, Any]]


class GroupSlotReader:
    """Reads key groups of a :class:`ShardSet` by (shard, member)."""

    def __init__(self, shards: ShardSet) -> None:
        self.shards = shards
        self._tables: OrderedDict[int, Table | ShardError | None] = OrderedDict()

    def read(self, shard_ids: "np.ndarray[Any, Any]", members: "np.ndarray[Any, Any]") -> SlotRead:
        """The groups at ``(shard_ids[k], members[k])``, in that order (failed ones left out,
        their errors in ``errors``)."""
        out = SlotRead()
        reported: set[int] = set()
        pairs = list(zip(np.asarray(shard_ids).tolist(), np.asarray(members).tolist(), strict=True))
        fetched = self._remote_runs(pairs)
        for k, (shard, member) in enumerate(pairs):
            src = self.shards.source(shard)
            try:
                index = self.shards.offsets(shard)
                table = self._table(shard, index)
                if isinstance(table, ShardError):
                    if shard not in reported:  # once per read: the shard's samples all fail
                        reported.add(shard)
                        out.errors.append(table)
                    continue
                if table is not None:
                    parts = dict(table[member])
                elif (shard, member) in fetched:
                    parts = fetched[(shard, member)]
                else:
                    parts = read_group(src, index, member, limit=self.shards.known_size(shard))
            except ShardError as exc:
                out.errors.append(exc)
                continue
            out.keys.append(index.keys[member])
            out.bodies.append(parts)
            out.origins.add(src.url, np.asarray([index.header_offsets[member]], dtype=np.int64))
            out.index.append(k)
        return out

    def _remote_runs(self, pairs: list[tuple[int, int]]) -> dict[tuple[int, int], dict[str, Any]]:
        """The groups wanted from remote shards, fetched with one range request per shard for
        the span from the first to the last one wanted (when that is at most 32 MiB); groups
        not fetched here (or whose fetch failed) are read one by one."""
        wanted: dict[int, list[int]] = {}
        for shard, member in pairs:
            wanted.setdefault(shard, []).append(member)
        got: dict[tuple[int, int], dict[str, Any]] = {}
        for shard, mems in wanted.items():
            if len(mems) < 2:
                continue
            try:
                src = self.shards.source(shard)
                if self._table(shard, self.shards.offsets(shard)) is not None:
                    continue  # local (or failed): read from its table
                index = self.shards.offsets(shard)
                groups = _fetch_span(
                    src, index, min(mems), max(mems), self.shards.known_size(shard)
                )
            except ShardError:
                continue  # each group is then read (and its error reported) on its own
            for member in mems:
                if member in groups:
                    got[(shard, member)] = dict(groups[member])
        return got

    def _table(self, shard: int, index: OffsetIndex) -> Table | ShardError | None:
        """The member table of a local shard (None: remote), or the error that ended it."""
        if shard in self._tables:
            self._tables.move_to_end(shard)
            return self._tables[shard]
        src = self.shards.source(shard)
        found: Table | ShardError | None
        try:
            found = _parse(src, index) if src.local_path() is not None else None
        except SidecarMismatch as exc:
            # the index is wrong: drop it for a scan; go on only if the count (which the plan's
            # positions were made from) still holds
            self.shards.rescan(shard, str(exc))
            try:
                again = self.shards.offsets(shard)
                found = _parse(src, again) if len(again) == len(index) else exc
            except ShardError as second:
                found = second
        except ShardError as exc:
            found = exc
        self._tables[shard] = found
        if len(self._tables) > _TABLES:
            self._tables.popitem(last=False)
        return found


def _fetch_span(
    src: Any, index: OffsetIndex, first: int, last: int, known_size: int | None
) -> dict[int, dict[str, Any]]:
    """Groups ``first..last`` of a remote shard from one range request, each member checked
    (header checksum, key and position against the index)."""
    if index.starts is None or index.ends is None:
        raise ShardError("no group spans in the offset index", shard=src.url)
    # the group after the last one is fetched too, as a fence: a member of the last group's key
    # there means the index splits that group (the shard's final group is left to read_group)
    fence = last + 1 if last + 1 < len(index) else last
    lo, hi = int(index.starts[first]), int(index.ends[fence])
    if hi - lo > _REMOTE_SPAN or (known_size is not None and hi > known_size):
        raise ShardError("span too large to fetch at once", shard=src.url)
    data = src.read_range(lo, hi - lo)
    if len(data) != hi - lo:
        raise ShardError(f"the shard ends at byte {lo + len(data)}", shard=src.url, offset=lo)
    chunk = parse_members(data, 0, len(data), lo, src.url, max_members=len(data))
    if chunk.next_offset != len(data):
        raise ShardError("the members there do not fill the span", shard=src.url, offset=lo)
    view = memoryview(data)
    groups: dict[int, dict[str, Any]] = {}
    for m in chunk.members:
        j = int(np.searchsorted(index.starts, m.header_offset, side="right")) - 1
        key, suffix = split_name(m.name)
        if not first <= j <= fence or index.keys[j] != key or m.header_offset >= index.ends[j]:
            raise SidecarMismatch(
                f"member {m.name!r} is not where the offset index puts its key",
                shard=src.url,
                offset=m.header_offset,
            )
        begin = m.body_offset - lo
        groups.setdefault(j, {})[suffix] = view[begin : begin + m.size]
    groups.pop(fence, None)  # the fence (or the shard's final group: read with its check)
    return groups


def _parse(src: Any, index: OffsetIndex) -> Table:
    """Every group of the shard as ``{extension: body view}``, checked against the index."""
    table: Table = []
    keys = index.keys
    starts, ends = index.starts, index.ends
    current: str | None = None
    for m, body in iter_members(src):
        key, suffix = split_name(m.name)
        if key != current or not table:
            j = len(table)
            if j >= len(keys) or keys[j] != key:
                raise SidecarMismatch(
                    f"the shard's sample {j} has key {key!r}, not the one the offset index "
                    "lists; rebuild or remove the index",
                    shard=src.url,
                    offset=m.header_offset,
                )
            table.append({})
            current = key
        j = len(table) - 1
        if starts is not None and ends is not None and not starts[j] <= m.header_offset < ends[j]:
            raise SidecarMismatch(
                f"member {m.name!r} lies outside the span the offset index gives sample {j}",
                shard=src.url,
                offset=m.header_offset,
            )
        table[-1][suffix] = body
    if len(table) != len(keys):
        raise SidecarMismatch(
            f"the shard holds {len(table)} samples, its offset index {len(keys)}", shard=src.url
        )
    return table
