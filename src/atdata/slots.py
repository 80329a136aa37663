"""Reading sample members by (shard, member number), for plans that jump around.

Local shards are mapped whole (a few at a time) and, every ``trim_bytes`` of bodies read, their
pages are let go (``MADV_DONTNEED``: the page cache keeps them), so resident memory stays bounded
however the plan jumps around the shards. The headers the offset index points at are verified
in bulk before bodies are used (checksum, type, size): every member up to the last one read, or,
for a query that selects members, only those read. Remote shards are read with one ranged
request per run of consecutive members.
"""

import contextlib
import mmap
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

from .errors import ShardError, SourceError
from .shards.offsets import OffsetIndex
from .shards.shardset import ShardSet
from .shards.tar import BLOCK, verify_indexed_headers

__all__ = ["SlotRead", "SlotReader"]

_MAPPED_SHARDS = 8
_REMOTE_GAP = 1 << 20  # remote members further apart than this are fetched separately...
_REMOTE_SPAN = 32 << 20  # ...once the span they lie in is larger than this
_COPY_BELOW = 1 << 16  # bodies all smaller than this are copied out (as the decoder would)


class Origins:
    """The ``(shard url, header offset)`` of each sample read, made only when asked for (they
    name a sample in an error): kept as one offset array per shard read."""

    __slots__ = ("_offsets", "_urls")

    def __init__(self) -> None:
        self._urls: list[str] = []
        self._offsets: list[np.ndarray[Any, Any]] = []

    def add(self, url: str, offsets: "np.ndarray[Any, Any]") -> None:
        self._urls.append(url)
        self._offsets.append(offsets)

    def reorder(self, perm: "np.ndarray[Any, Any]") -> None:
        """Put the samples in the order ``perm`` (indexes into the current order)."""
        if not self._offsets:
            return
        which = np.repeat(np.arange(len(self._urls)), [len(o) for o in self._offsets])[perm]
        offsets = np.concatenate(self._offsets)[perm]
        cuts = (np.flatnonzero(which[1:] != which[:-1]) + 1).tolist()
        urls, self._urls, self._offsets = self._urls, [], []
        for a, b in zip([0, *cuts], [*cuts, len(which)], strict=True):
            self.add(urls[int(which[a])], offsets[a:b])

    def __iter__(self) -> Iterator[tuple[str, int]]:
        for url, offsets in zip(self._urls, self._offsets, strict=True):
            yield from zip(repeat(url), offsets.tolist())

    def __len__(self) -> int:
        return sum(len(o) for o in self._offsets)

    def __getitem__(self, k: int) -> tuple[str, int]:
        return list(self)[k]


@dataclass
class SlotRead:
    """Samples read for a list of slots, in the slots' order (failed slots left out)."""

    keys: list[str] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    origins: Origins = field(default_factory=Origins)  # (shard url, header offset) of each
    errors: list[ShardError] = field(default_factory=list)
    index: list[int] = field(default_factory=list)  # which of the requested slots each one is


class SlotReader:
    """Reads members of a :class:`ShardSet` by (shard, member) through the offset indexes."""

    def __init__(
        self, shards: ShardSet, trim_bytes: int = 128 << 20, *, whole: bool = True
    ) -> None:
        self.shards = shards
        self.trim_bytes = trim_bytes
        #: True: every member up to the last one read is verified, so reading stops at the
        #: first damaged member as a sequential read does; False (a query that selects a few
        #: members): only the headers of the members read are verified
        self.whole = whole
        self._checked: dict[int, str | None] = {}  # shard -> local path (None: remote)
        self._verified: dict[int, int] = {}  # local shard -> leading members verified (whole)
        self._maps: dict[int, Any] = {}  # shard -> mapping of the whole shard (a few, LRU)
        self._touched = 0  # bytes read through the mappings since they were last trimmed
        self._spans: dict[int, tuple[int, bytes]] = {}  # remote shard -> (offset, bytes) held
        self._broken: dict[int, int] = {}  # shard -> first damaged member (local shards)

    def _path(self, i: int, errors: list[ShardError]) -> str | None:
        """Shard ``i``'s local path (None: remote); a stored or cached shard is verified
        (sha256) when it is first opened, and none of its members is read if that fails."""
        if i not in self._checked:
            src = self.shards.source(i)
            try:  # a local or cached shard is verified (sha256) when it is opened
                path = src.local_path()
            except ShardError as exc:  # the whole shard is bad: none of its members is read
                self._broken[i] = 0
                self._checked[i] = None
                errors.append(exc)
                return None
            self._checked[i] = path
        return self._checked[i]

    def _verify(
        self, i: int, path: str, mem: "np.ndarray[Any, Any]", errors: list[ShardError]
    ) -> None:
        """Verify the headers the offset index points at before ``mem`` (ascending) of local
        shard ``i`` is read (checksum, type, size, and that the member lies inside the file):
        with :attr:`whole`, every member up to the last of ``mem``, else only ``mem``'s. From
        the first that fails on, the shard's members are left out, as a sequential read stops
        at a damaged member."""
        index = self.shards.offsets(i)
        if self.whole:
            done = self._verified.get(i, 0)
            upto = int(mem[-1]) + 1
            if upto <= done:
                return
            members = np.arange(done, upto, dtype=np.int64)
        else:
            members = mem
        url = self.shards.source(i).url
        broken = _first_bad_member(self._mapping(i, path, url), index, members)
        if broken is None:
            if self.whole:
                self._verified[i] = upto
            return
        member, offset = broken
        self._broken[i] = member
        errors.append(
            ShardError(
                "member header does not match the offset index (corrupt, truncated "
                "or changed shard); the rest of this shard is skipped",
                shard=self.shards.source(i).url,
                offset=offset,
            )
        )

    def _mapping(self, shard: int, path: str, url: str) -> Any:
        mm = self._maps.pop(shard, None)
        if mm is None:
            mm = _map_span(path, url, 0, os.stat(path).st_size)
            if len(self._maps) >= _MAPPED_SHARDS:
                self._maps.pop(next(iter(self._maps)))  # closed once no view of it is left
        self._maps[shard] = mm
        return mm

    def trim(self) -> None:
        """Let go of the pages read so far (they stay in the page cache): resident memory stays
        near ``trim_bytes`` however much of the shards is read through the mappings."""
        for mm in self._maps.values():
            with contextlib.suppress(AttributeError, OSError, ValueError):
                mm.madvise(mmap.MADV_DONTNEED)
        self._touched = 0

    def read(self, shard_ids: "np.ndarray[Any, Any]", members: "np.ndarray[Any, Any]") -> SlotRead:
        """The samples at ``(shard_ids[k], members[k])``, in that order."""
        n = len(shard_ids)
        out = SlotRead()
        if n == 0:
            return out
        shard_ids = np.asarray(shard_ids, dtype=np.int64)
        members = np.asarray(members, dtype=np.int64)
        if n > 1 and bool((shard_ids[1:] == shard_ids[:-1]).all()):
            order = np.arange(n, dtype=np.int64)  # one shard (an ordered run, mostly)
            if not bool((members[1:] > members[:-1]).all()):
                order = np.argsort(members, kind="stable")
        else:
            order = np.lexsort((members, shard_ids)) if n > 1 else np.zeros(1, dtype=np.int64)
        s_sorted = shard_ids[order]
        m_sorted = members[order]
        cuts = (np.flatnonzero(s_sorted[1:] != s_sorted[:-1]) + 1).tolist()
        wheres: list[Any] = []
        keys: list[str] = []
        bodies: list[Any] = []
        for a, b in zip([0, *cuts], [*cuts, n], strict=True):
            shard = int(s_sorted[a])
            mem = m_sorted[a:b]
            where = order[a:b]
            path = self._path(shard, out.errors)
            if path is not None and shard not in self._broken:
                self._verify(shard, path, mem, out.errors)
            broken = self._broken.get(shard)
            if broken is not None:
                where = where[mem < broken]
                mem = mem[mem < broken]
                if not len(mem):
                    continue
            index = self.shards.offsets(shard)
            url = self.shards.urls[shard]
            offs = index.header_offsets[mem]
            got = self._read_group(
                shard, path, index, offs, index.sizes[mem], url=url, errors=out.errors
            )
            failed = [k for k, body in enumerate(got) if body is None]
            if failed:  # some members failed their header check: leave them out
                keep = np.ones(len(got), dtype=bool)
                keep[failed] = False
                got = [body for body in got if body is not None]
                where, mem, offs = where[keep], mem[keep], offs[keep]
                if not len(mem):
                    continue
            first, last = int(mem[0]), int(mem[-1])
            if last - first + 1 == len(mem) and bool((mem[1:] != mem[:-1]).all()):
                keys.extend(index.keys[first : last + 1])  # a run of consecutive members
            else:
                keys.extend(map(index.keys.__getitem__, mem.tolist()))
            bodies.extend(got)
            wheres.append(where)
            out.origins.add(url, offs)
        if self._touched > self.trim_bytes:
            self.trim()
        if not wheres:
            return out
        where_all = np.concatenate(wheres) if len(wheres) > 1 else wheres[0]
        if len(where_all) > 1 and not bool((where_all[1:] > where_all[:-1]).all()):
            back = np.argsort(where_all, kind="stable")
            pick = back.tolist()
            keys = list(map(keys.__getitem__, pick))
            bodies = list(map(bodies.__getitem__, pick))
            out.origins.reorder(back)
            where_all = where_all[back]
        out.keys = keys
        out.bodies = bodies
        out.index = where_all.tolist()
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
        if path is None and self._broken.get(shard) == 0:
            return [None] * len(offs)  # a remote shard that failed to fetch or verify
        span = int(offs[-1]) + BLOCK + int(sizes[-1]) - int(offs[0])
        if path is None and len(offs) > 1 and span > _REMOTE_SPAN:
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
            base = 0
            buf: Any = self._mapping(shard, path, url)
            self._touched += stop - first if len(offs) == 1 else int(sizes.sum())
        else:
            try:
                base, buf = self._remote_span(shard, first, stop, url)
            except ShardError as exc:  # e.g. the shard's bytes fail its recorded sha256
                self._broken[shard] = 0  # none of its members is read from now on
                errors.append(exc)
                return [None] * len(offs)
        rel = offs - base
        # a local shard's headers were verified before its members were read (see _verify)
        bad = None if path is not None else verify_indexed_headers(buf, rel, sizes)
        view = memoryview(buf)
        if bad is None:
            starts = (rel + BLOCK).tolist()
            ends = (rel + BLOCK + sizes).tolist()
            if int(sizes.max()) < _COPY_BELOW:  # small bodies are copied: no views to track
                return list(map(buf.__getitem__, map(slice, starts, ends)))
            return [view[a:e] for a, e in zip(starts, ends, strict=True)]
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
        """Bytes from ``first`` to at least ``stop`` of a remote shard, and where they start: from
        the span last fetched of it when that covers them, else fetched (a shard of at most
        32 MiB whole). At most 8 spans are held."""
        held = self._spans.get(shard)
        if held is not None and held[0] <= first and stop <= held[0] + len(held[1]):
            return held
        size = self.shards.offsets(shard).shard_size
        if size <= _REMOTE_SPAN:  # a small shard is fetched whole, once
            first, stop = 0, size
        got = self._fetch(shard, first, stop, url)
        self._spans.pop(shard, None)
        if len(self._spans) >= _MAPPED_SHARDS:
            self._spans.pop(next(iter(self._spans)))
        self._spans[shard] = got
        return got

    def _fetch(self, shard: int, first: int, stop: int, url: str) -> tuple[int, bytes]:
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


def _first_bad_member(
    buf: Any, index: OffsetIndex, members: "np.ndarray[Any, Any]"
) -> tuple[int, int] | None:
    """(member number, header offset) of the first of ``members`` (ascending) whose header
    in ``buf`` (the whole shard) fails, or None."""
    if not len(members):
        return None
    offsets = index.header_offsets[members]
    ends = offsets + BLOCK + index.sizes[members]
    outside = np.nonzero(ends > len(buf))[0]
    fits = int(outside[0]) if outside.size else len(members)
    bad = None
    if fits:
        bad = verify_indexed_headers(buf, offsets[:fits], index.sizes[members[:fits]])
    first = bad if bad is not None else (fits if fits < len(members) else None)
    if first is None:
        return None
    return int(members[first]), int(offsets[first])


def _map_span(path: str, url: str, offset: int, length: int) -> Any:
    try:
        with open(path, "rb") as f:
            return mmap.mmap(f.fileno(), length, access=mmap.ACCESS_READ, offset=offset)
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot map shard {url!r} at byte {offset}: {exc}") from exc


SizesOf = Callable[[int], "np.ndarray[Any, Any]"]
