"""A dataset's shards with their offset indexes, loaded lazily and shared by derived datasets.

Sidecars are checked before they are used: against the sha256 recorded for the sidecar itself
(when the dataset's record has one), against the shard's recorded size and sha256 (which the
sidecar repeats), against the local file's size, and for believable size. A sidecar that fails
any check, or that a read later finds disagreeing with the shard's member headers, is treated
as absent: an ``AtdataWarning`` says so and the shard is scanned instead. It is never trusted.
"""

import bisect
import hashlib
import logging
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from .._redact import Redacted, redact
from ..errors import AtdataWarning, ShardError, SourceError
from ..sources import ShardCache, ShardSource, open_source, wrap_source
from . import scancache
from .offsets import OFFSETS_SUFFIX, OffsetIndex, read_claim, sidecar_limit
from .reader import scan_offsets

__all__ = [
    "CheckedOpener",
    "ShardExpectation",
    "ShardSet",
    "SourceFactory",
    "check_sidecar_sha256",
]

_log = logging.getLogger(__name__)

SourceFactory = Callable[[str], ShardSource]
_BLOCK = 512


@dataclass(frozen=True)
class ShardExpectation:
    """What a dataset's record says about one shard (each part optional)."""

    size: int | None = None
    sha256: str | None = None
    sidecar_sha256: str | None = None
    manifest_sha256: str | None = None


class CheckedOpener:
    """A source factory that opens shards by URL, through a shard cache (if any) and checked
    against expected sha256 digests (by URL). Picklable: the setting travels, not open files.
    ``expectations`` (by URL) are what a record says about shards (see :class:`ShardSet`)."""

    def __init__(
        self,
        cache: ShardCache | None,
        digests: Mapping[str, str],
        expectations: Mapping[str, ShardExpectation] | None = None,
    ) -> None:
        self.cache = cache
        self.digests = dict(digests)
        self.expectations = dict(expectations or {})

    def expectation(self, url: str) -> ShardExpectation | None:
        return self.expectations.get(url)

    def __call__(self, url: str) -> ShardSource:
        return wrap_source(
            open_source(url), cache=self.cache, expected_sha256=self.digests.get(url)
        )


class ShardSet:
    """Shard URLs, their sources, and (on demand) their offset indexes and counts.

    A source factory may tell what is recorded about each shard through an
    ``expectation(url) -> ShardExpectation | None`` method; those values bound reads and check
    sidecars.
    """

    def __init__(self, urls: list[str], source_factory: SourceFactory | None = None) -> None:
        self.urls = urls
        self._factory = source_factory or open_source
        self._sources: dict[int, ShardSource] = {}
        self._offsets: dict[int, OffsetIndex] = {}
        self._from_sidecar: set[int] = set()
        self._cumulative: list[int] | None = None
        self._keys: dict[str, tuple[int, int]] | None = None
        self._no_sidecar: set[int] = set()
        self._distrusted: set[int] = set()
        self._from_cache: set[int] = set()  # indexes taken from the scan cache
        self._scan_only: set[int] = set()  # a cached scan proved wrong: scan, don't look it up
        self._claimed: dict[int, tuple[str | None, int, int]] = {}  # see claimed()
        self._claim_bytes: tuple[int, bytes] | None = None  # the last sidecar claimed() read
        self._counts: dict[int, int] = {}  # counts taken without loading the index (count_from)

    def __reduce__(
        self,
    ) -> tuple[type["ShardSet"], tuple[list[str], SourceFactory], dict[str, Any]]:
        """Pickled as its URLs, source factory and (once known) sample counts: open sources,
        offset indexes and key tables are rebuilt lazily where it is unpickled (they are large,
        and sources hold files and connections)."""
        return (ShardSet, (self.urls, self._factory), {"_cumulative": self._cumulative})

    def __len__(self) -> int:
        return len(self.urls)

    @property
    def factory(self) -> SourceFactory:
        """How this set opens its shards (shared by subsets of it)."""
        return self._factory

    def source(self, i: int) -> ShardSource:
        src = self._sources.get(i)
        if src is None:
            src = self._factory(self.urls[i])
            self._sources[i] = src
        return src

    def expectation(self, i: int) -> ShardExpectation:
        """What the dataset's record says about shard ``i`` (empty when nothing is recorded)."""
        ask = getattr(self._factory, "expectation", None)
        found = ask(self.urls[i]) if callable(ask) else None
        return found if isinstance(found, ShardExpectation) else ShardExpectation()

    def known_size(self, i: int) -> int | None:
        """Shard ``i``'s size as recorded (None when unrecorded): reads never go past it."""
        return self.expectation(i).size

    def sidecar(self, i: int) -> OffsetIndex | None:
        """Shard ``i``'s offset index if it has a sidecar that passes the checks (never scans)."""
        if i in self._from_sidecar:
            return self._offsets[i]
        if i in self._no_sidecar:
            return None
        idx = self._load_sidecar(i)
        if idx is None:
            self._no_sidecar.add(i)
        else:
            self._offsets[i] = idx
            self._from_sidecar.add(i)
        return idx

    def _load_sidecar(self, i: int) -> OffsetIndex | None:
        src = self.source(i)
        where = f"{src.url}{OFFSETS_SUFFIX}"
        expect = self.expectation(i)
        path = _peek_local_path(src)
        local_size: int | None = None
        if path is not None:
            try:
                local_size = os.path.getsize(path)
            except OSError:
                local_size = None
        try:
            held = self._claim_bytes
            self._claim_bytes = None
            data = (
                held[1] if held is not None and held[0] == i else src.read_sidecar(OFFSETS_SUFFIX)
            )
            if data is None:
                return None
            check_sidecar_sha256(data, expect.sidecar_sha256)
            size = expect.size if expect.size is not None else local_size
            if len(data) > sidecar_limit(size):
                raise ShardError(f"{len(data)} bytes is too large for a shard of {size} bytes")
            idx = OffsetIndex.from_bytes(data, where)
            for what, recorded, claimed in (
                ("size", expect.size, idx.shard_size),
                ("sha256", expect.sha256, idx.sha256),
            ):
                if recorded is not None and claimed is not None and recorded != claimed:
                    raise ShardError(
                        f"it describes a shard of {what} {claimed}, but the shard's is {recorded}"
                    )
            if idx.starts is None and idx.bulk_names() is None:
                # every version-1 sidecar atdata writes lists one member per sample, back to
                # back from byte 0: anything else was edited (or lists only some members)
                raise ShardError("it does not list one member per sample back to back")
            if path is not None and local_size == idx.shard_size:
                _check_listed_to_the_end(path, idx)
        except ShardError as exc:
            self._distrust(i, str(exc))
            return None
        return idx

    def _distrust(self, i: int, reason: str) -> None:
        url = self.source(i).url
        warnings.warn(
            redact(
                f"offset index {url}{OFFSETS_SUFFIX} is not used: {reason}. Scanning the shard "
                "instead; rebuild or remove the sidecar."
            ),
            AtdataWarning,
            stacklevel=5,
        )
        self._no_sidecar.add(i)
        self._distrusted.add(i)

    def claimed(self, i: int) -> tuple[str | None, int, int] | None:
        """(sha256, shard size, sample count) that shard ``i``'s offset index states, without
        loading it whole when it is not loaded yet: only the sidecar's leading fields are decoded,
        after the checks that need no more (the sha256 recorded for the sidecar, a believable
        size, the shard's recorded size and sha256). None when there is no such sidecar (or it
        fails those checks; the full load then decides). A shard whose manifest rules it out is
        never read, so this is all a query needs of it."""
        idx = self._offsets.get(i)
        if idx is not None:
            return idx.sha256, idx.shard_size, len(idx)
        if i in self._no_sidecar:
            return None
        if i not in self._claimed:
            found = self._read_claim(i)
            if found is None:
                return None
            self._claimed[i] = found
        return self._claimed[i]

    def _read_claim(self, i: int) -> tuple[str | None, int, int] | None:
        src = self.source(i)
        expect = self.expectation(i)
        try:
            data = src.read_sidecar(OFFSETS_SUFFIX)
        except (ShardError, SourceError, OSError):
            return None  # the full load reports it
        if data is None:
            return None
        self._claim_bytes = (i, data)  # the full load that often follows reads it from here
        recorded = expect.sidecar_sha256
        if recorded is not None and hashlib.sha256(data).hexdigest() != recorded.lower():
            return None
        if len(data) > sidecar_limit(expect.size):
            return None
        found = read_claim(data)
        if found is None:
            return None
        sha, size, _ = found
        if expect.size is not None and expect.size != size:
            return None
        if expect.sha256 is not None and sha is not None and expect.sha256 != sha:
            return None
        return found

    def count_from(self, i: int, count: int) -> None:
        """Take shard ``i``'s sample count as ``count`` (what its offset index claims, checked
        by the caller: see :meth:`claimed`) without loading the index, unless it is loaded."""
        if i not in self._offsets:
            self._counts[i] = count

    def count(self, i: int) -> int:
        """Samples in shard ``i``: as :meth:`count_from` took it, else from its offset index
        (:meth:`cumulative`, and so ``len()``, always loads the index)."""
        idx = self._offsets.get(i)
        if idx is not None:
            return len(idx)
        known = self._counts.get(i)
        return known if known is not None else len(self.offsets(i))

    def offsets(self, i: int) -> OffsetIndex:
        """The offset index of shard ``i``: its sidecar, else a full scan (with a warning)."""
        idx = self._offsets.get(i)
        if idx is None:
            idx = self.sidecar(i)
            self._counts.pop(i, None)
        if idx is None:
            src = self.source(i)
            path, digest = _peek_local_path(src), self.expectation(i).sha256
            if i not in self._scan_only:
                idx = scancache.load(src, path, digest)
                if idx is not None:
                    self._from_cache.add(i)
                    self._offsets[i] = idx
                    return idx
            _log.info("%s: no usable offset index; scanning the shard", Redacted(src.url))
            if i not in self._distrusted:
                warnings.warn(
                    redact(
                        f"shard {src.url} has no offset index ({src.url}{OFFSETS_SUFFIX}); "
                        "scanning it once (the result is cached under $ATDATA_HOME/offsets). "
                        "Shards written by atdata have one."
                    ),
                    AtdataWarning,
                    stacklevel=4,
                )
            idx = scan_offsets(src, max_size=self.known_size(i))
            scancache.save(src, path, digest, idx)
            self._offsets[i] = idx
        return idx

    def rescan(self, i: int, reason: str) -> bool:
        """Drop shard ``i``'s index after a read found it wrong; False if it was a scan already
        scanned again (the shard itself changed or is corrupt)."""
        was_sidecar = i in self._from_sidecar or i in self._from_cache
        if i in self._from_cache:
            self._from_cache.discard(i)
            self._scan_only.add(i)
            scancache.forget(_peek_local_path(self.source(i)), self.expectation(i).sha256)
            warnings.warn(
                redact(
                    f"the cached scan of shard {self.source(i).url} is not used: {reason}. "
                    "Scanning the shard again."
                ),
                AtdataWarning,
                stacklevel=4,
            )
        elif was_sidecar:
            self._from_sidecar.discard(i)
            self._distrust(i, reason)
        self._offsets.pop(i, None)
        self._cumulative = None
        self._keys = None
        return was_sidecar

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


def _check_listed_to_the_end(path: str, idx: OffsetIndex) -> None:
    """After the last sample the index lists, a local shard must end or hold end-of-archive
    zeros: a sidecar leaving samples out would make ``len()`` disagree with iteration."""
    end = idx.end_offset()
    try:
        with open(path, "rb") as f:
            f.seek(end)
            tail = f.read(_BLOCK)
    except OSError:
        return  # reading the shard itself reports this
    if tail and tail != bytes(_BLOCK):
        raise ShardError(f"the shard holds members after the last one it lists (byte {end})")


def _peek_local_path(src: ShardSource) -> str | None:
    """Where a shard lies on disk, if it does, without the work ``local_path()`` may do first
    (verifying a stored shard, filling the cache): sidecar checks read sizes, not content."""
    peek = getattr(src, "peek_local_path", None)
    if callable(peek):
        found = peek()
        return found if isinstance(found, str) else None
    return src.local_path()


def check_sidecar_sha256(data: bytes, recorded: str | None) -> None:
    """ShardError when a sidecar's ``data`` does not hash to the ``recorded`` sha256 (when one
    is recorded)."""
    if recorded is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != recorded.lower():
            raise ShardError(
                f"its sha256 {digest} differs from the one recorded for it ({recorded})"
            )
