"""Reading whole key groups by (shard, member number), for member-layout sample types.

A sample of a member-layout shard is several tar members sharing a key; the offset index
records each group's byte span (format version 2). A local shard is parsed once per reader
(every header checked, as a sequential read does) into a table of its groups' member bodies,
which are views of the mapped file; the table must agree with the offset index (same keys in
the same order, each group inside its recorded span), else the shard's samples fail with a
:class:`~atdata.shards.offsets.SidecarMismatch`. A few tables are kept (least recently used
first out). Remote shards read each group's span with its headers
(:func:`~atdata.shards.access.read_group`). Either way a sample comes out as
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
from .shards.tar import split_name
from .slots import SlotRead

__all__ = ["GroupSlotReader"]

_TABLES = 8  # shards whose member tables are kept
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
        for k, (shard, member) in enumerate(
            zip(np.asarray(shard_ids).tolist(), np.asarray(members).tolist(), strict=True)
        ):
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
