"""Reading whole key groups by (shard, member number), for member-layout sample types.

A sample of a member-layout shard is several tar members sharing a key; the offset index
records each group's byte span (format version 2). Each group is read with its headers and
checked against the index (:func:`~atdata.shards.access.read_group`), then handed out as
``{extension: bytes}``; the same :class:`~atdata.slots.SlotRead` shape as the msgpack reader.
"""

from typing import Any

import numpy as np

from .errors import ShardError
from .shards.access import read_group
from .shards.shardset import ShardSet
from .slots import SlotRead

__all__ = ["GroupSlotReader"]


class GroupSlotReader:
    """Reads key groups of a :class:`ShardSet` by (shard, member), one span read each."""

    def __init__(self, shards: ShardSet) -> None:
        self.shards = shards

    def read(self, shard_ids: "np.ndarray[Any, Any]", members: "np.ndarray[Any, Any]") -> SlotRead:
        """The groups at ``(shard_ids[k], members[k])``, in that order (failed ones left out,
        their errors in ``errors``)."""
        out = SlotRead()
        for k, (shard, member) in enumerate(
            zip(np.asarray(shard_ids).tolist(), np.asarray(members).tolist(), strict=True)
        ):
            src = self.shards.source(shard)
            try:
                index = self.shards.offsets(shard)
                parts = read_group(src, index, member, limit=self.shards.known_size(shard))
            except ShardError as exc:
                out.errors.append(exc)
                continue
            out.keys.append(index.keys[member])
            out.bodies.append(parts)
            out.origins.add(src.url, np.asarray([index.header_offsets[member]], dtype=np.int64))
            out.index.append(k)
        return out
