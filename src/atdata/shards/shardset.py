"""A dataset's shards with their offset indexes, loaded lazily and shared by derived datasets."""

import bisect
import warnings
from collections.abc import Callable, Mapping
from itertools import accumulate
from typing import Any

from ..errors import AtdataWarning
from ..sources import ShardCache, ShardSource, open_source, wrap_source
from .offsets import OffsetIndex
from .reader import load_offsets, scan_offsets

__all__ = ["CheckedOpener", "ShardSet", "SourceFactory"]

SourceFactory = Callable[[str], ShardSource]


class CheckedOpener:
    """A source factory that opens shards by URL, through a shard cache (if any) and checked
    against expected sha256 digests (by URL). Picklable: the setting travels, not open files."""

    def __init__(self, cache: ShardCache | None, digests: Mapping[str, str]) -> None:
        self.cache = cache
        self.digests = dict(digests)

    def __call__(self, url: str) -> ShardSource:
        return wrap_source(
            open_source(url), cache=self.cache, expected_sha256=self.digests.get(url)
        )


class ShardSet:
    """Shard URLs, their sources, and (on demand) their offset indexes and counts."""

    def __init__(self, urls: list[str], source_factory: SourceFactory | None = None) -> None:
        self.urls = urls
        self._factory = source_factory or open_source
        self._sources: dict[int, ShardSource] = {}
        self._offsets: dict[int, OffsetIndex] = {}
        self._cumulative: list[int] | None = None
        self._keys: dict[str, tuple[int, int]] | None = None
        self._no_sidecar: set[int] = set()

    def __reduce__(
        self,
    ) -> tuple[type["ShardSet"], tuple[list[str], SourceFactory], dict[str, Any]]:
        """Pickled as its URLs, source factory and (once known) sample counts: open sources,
        offset indexes and key tables are rebuilt lazily where it is unpickled (they are large,
        and sources hold files and connections)."""
        return (ShardSet, (self.urls, self._factory), {"_cumulative": self._cumulative})

    def __len__(self) -> int:
        return len(self.urls)

    def source(self, i: int) -> ShardSource:
        src = self._sources.get(i)
        if src is None:
            src = self._factory(self.urls[i])
            self._sources[i] = src
        return src

    def sidecar(self, i: int) -> OffsetIndex | None:
        """Shard ``i``'s offset index if it has a sidecar (never scans; None otherwise)."""
        idx = self._offsets.get(i)
        if idx is not None:
            return idx
        if i in self._no_sidecar:
            return None
        idx = load_offsets(self.source(i))
        if idx is None:
            self._no_sidecar.add(i)
        else:
            self._offsets[i] = idx
        return idx

    def offsets(self, i: int) -> OffsetIndex:
        """The offset index of shard ``i``: its sidecar, else a full scan (with a warning)."""
        idx = self._offsets.get(i)
        if idx is None:
            src = self.source(i)
            idx = load_offsets(src)
            if idx is None:
                warnings.warn(
                    f"shard {src.url} has no offset index ({src.url}.idx); scanning it once. "
                    "Shards written by atdata have one.",
                    AtdataWarning,
                    stacklevel=4,
                )
                idx = scan_offsets(src)
            self._offsets[i] = idx
        return idx

    def cumulative(self) -> list[int]:
        """Running sample counts: shard i holds samples [cum[i], cum[i+1])."""
        if self._cumulative is None:
            self._cumulative = [0, *accumulate(len(self.offsets(i)) for i in range(len(self.urls)))]
        return self._cumulative

    def total(self) -> int:
        return self.cumulative()[-1]

    def locate(self, index: int) -> tuple[int, int]:
        """(shard, member number) of global sample ``index`` (negative counts from the end)."""
        total = self.total()
        if index < 0:
            index += total
        if not 0 <= index < total:
            raise IndexError(f"sample index {index} out of range for {total} samples")
        cum = self.cumulative()
        shard = bisect.bisect_right(cum, index) - 1
        return shard, index - cum[shard]

    def find_key(self, key: str) -> tuple[int, int] | None:
        """(shard, member number) of the sample with ``key``, or None."""
        if self._keys is None:
            table: dict[str, tuple[int, int]] = {}
            for i in range(len(self.urls)):
                for j, k in enumerate(self.offsets(i).keys):
                    table.setdefault(k, (i, j))
            self._keys = table
        return self._keys.get(key)
