"""Reading sample members by (shard, member number), for plans that jump around.

Local shards are mapped span by span: each call maps only the page-aligned byte span its members
lie in and lets it go afterwards, so resident memory follows the samples being read, not the
shards visited. The headers the offset index points at are verified in bulk (checksum, type,
size). Remote shards are read with one ranged request per run of consecutive members.
"""

import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ShardError, SourceError
from .shards.offsets import OffsetIndex
from .shards.shardset import ShardSet
from .shards.tar import BLOCK, verify_indexed_headers

__all__ = ["SlotRead", "SlotReader"]

_PAGE = mmap.ALLOCATIONGRANULARITY
_REMOTE_GAP = 1 << 20  # remote members further apart than this are fetched separately


@dataclass
class SlotRead:
    """Samples read for a list of slots, in the slots' order (failed slots left out)."""

    keys: list[str] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    origins: list[tuple[str, int]] = field(default_factory=list)  # (shard url, header offset)
    errors: list[ShardError] = field(default_factory=list)
    index: list[int] = field(default_factory=list)  # which of the requested slots each one is


class SlotReader:
    """Reads members of a :class:`ShardSet` by (shard, member) through the offset indexes."""

    def __init__(self, shards: ShardSet) -> None:
        self.shards = shards
        self._checked: dict[int, str | None] = {}  # shard -> local path (None: remote)
        self._broken: dict[int, int] = {}  # shard -> first damaged member (local shards)

    def _path(self, i: int, errors: list[ShardError]) -> str | None:
        """Shard ``i``'s local path (None: remote), checking a local shard on first use.

        Every header the offset index points at is verified at once (checksum, type, size, and
        that the member lies inside the file); from the first that fails on, the shard's members
        are left out, as a sequential read stops at a damaged member.
        """
        if i not in self._checked:
            src = self.shards.source(i)
            path = src.local_path()
            if path is not None:
                broken = _first_bad_member(path, src.url, self.shards.offsets(i))
                if broken is not None:
                    member, offset = broken
                    self._broken[i] = member
                    errors.append(
                        ShardError(
                            "member header does not match the offset index (corrupt, truncated "
                            "or changed shard); the rest of this shard is skipped",
                            shard=src.url,
                            offset=offset,
                        )
                    )
            self._checked[i] = path
        return self._checked[i]

    def read(self, shard_ids: "np.ndarray[Any, Any]", members: "np.ndarray[Any, Any]") -> SlotRead:
        """The samples at ``(shard_ids[k], members[k])``, in that order."""
        n = len(shard_ids)
        keys: list[str | None] = [None] * n
        bodies: list[Any] = [None] * n
        origins: list[tuple[str, int] | None] = [None] * n
        errors: list[ShardError] = []
        if n == 0:
            return SlotRead()
        if n == 1 or bool((shard_ids[1:] == shard_ids[:-1]).all()):
            groups: list[tuple[int, Any]] = [(int(shard_ids[0]), np.arange(n))]
        else:
            groups = [(int(s), np.nonzero(shard_ids == s)[0]) for s in np.unique(shard_ids)]
        for shard, requested in groups:
            where = requested
            mem = np.asarray(members[where], dtype=np.int64)
            path = self._path(shard, errors)
            broken = self._broken.get(shard)
            if broken is not None:
                where = where[mem < broken]
                mem = mem[mem < broken]
                if not len(mem):
                    continue
            order = np.argsort(mem, kind="stable")
            sorted_where = where[order]
            index = self.shards.offsets(shard)
            url = self.shards.urls[shard]
            offs = index.header_offsets[mem[order]]
            sizes = index.sizes[mem[order]]
            got = self._read_group(shard, path, index, offs, sizes, url=url, errors=errors)
            key_list = index.keys
            for k, slot, m, body in zip(
                sorted_where.tolist(), mem[order].tolist(), offs.tolist(), got, strict=True
            ):
                if body is None:
                    continue
                keys[k] = key_list[slot]
                bodies[k] = body
                origins[k] = (url, m)
        out = SlotRead(errors=errors)
        for k in range(n):
            if bodies[k] is not None:
                out.keys.append(keys[k])  # type: ignore[arg-type]
                out.bodies.append(bodies[k])
                out.origins.append(origins[k])  # type: ignore[arg-type]
                out.index.append(k)
        return out

    def _read_group(
        self,
        shard: int,
        path: str | None,
        index: OffsetIndex,
        offs: "np.ndarray[Any, Any]",
        sizes: "np.ndarray[Any, Any]",
        *,
        url: str,
        errors: list[ShardError],
    ) -> list[Any]:
        """Bodies of members at header offsets ``offs`` (ascending) of one shard."""
        if path is None and len(offs) > 1:
            gaps = offs[1:] - (offs[:-1] + BLOCK + sizes[:-1])
            cuts = (np.nonzero(gaps > _REMOTE_GAP)[0] + 1).tolist()
            if cuts:
                out: list[Any] = []
                for a, b in zip([0, *cuts], [*cuts, len(offs)], strict=True):
                    out.extend(
                        self._read_group(
                            shard, path, index, offs[a:b], sizes[a:b], url=url, errors=errors
                        )
                    )
                return out
        first = int(offs[0])
        stop = int(offs[-1]) + BLOCK + int(sizes[-1])
        if path is not None:
            base = first - first % _PAGE
            buf: Any = _map_span(path, url, base, stop - base)
        else:
            base, buf = self._remote_span(shard, first, stop, url)
        rel = offs - base
        bad = verify_indexed_headers(buf, rel, sizes)
        view = memoryview(buf)
        if bad is None:
            return [
                view[o + BLOCK : o + BLOCK + s]
                for o, s in zip(rel.tolist(), sizes.tolist(), strict=True)
            ]
        out = []
        for o, s in zip(rel.tolist(), sizes.tolist(), strict=True):
            one = np.asarray([o], dtype=np.int64)
            if verify_indexed_headers(buf, one, np.asarray([s], dtype=np.int64)) is None:
                out.append(view[o + BLOCK : o + BLOCK + s])
            else:
                out.append(None)
                errors.append(
                    ShardError(
                        "member header does not match the offset index (corrupt or changed shard)",
                        shard=url,
                        offset=base + o,
                    )
                )
        return out

    def _remote_span(self, shard: int, first: int, stop: int, url: str) -> tuple[int, bytes]:
        src = self.shards.source(shard)
        try:
            data = src.read_range(first, stop - first)
        except SourceError:
            raise
        except OSError as exc:
            raise SourceError(f"reading shard {url!r} failed: {exc}") from exc
        if len(data) != stop - first:
            raise ShardError("shard is shorter than its offset index says", shard=url, offset=first)
        return first, data


def _first_bad_member(path: str, url: str, index: OffsetIndex) -> tuple[int, int] | None:
    """(member number, header offset) of the first member whose header fails, or None."""
    n = len(index)
    if not n:
        return None
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise SourceError(f"cannot open shard {url!r}: {exc}") from exc
    ends = index.header_offsets + BLOCK + index.sizes
    outside = np.nonzero(ends > size)[0]
    fits = int(outside[0]) if outside.size else n
    bad = None
    if fits:
        buf = _map_span(path, url, 0, size)
        bad = verify_indexed_headers(buf, index.header_offsets[:fits], index.sizes[:fits])
        del buf
    first = bad if bad is not None else (fits if fits < n else None)
    if first is None:
        return None
    return first, int(index.header_offsets[first])


def _map_span(path: str, url: str, offset: int, length: int) -> Any:
    try:
        with open(path, "rb") as f:
            return mmap.mmap(f.fileno(), length, access=mmap.ACCESS_READ, offset=offset)
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot map shard {url!r} at byte {offset}: {exc}") from exc


SizesOf = Callable[[int], "np.ndarray[Any, Any]"]
