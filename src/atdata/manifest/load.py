"""Loading the manifests of a :class:`ShardSet`, checked before use and never trusted blindly.

A manifest is used only when: it decodes and is well formed (:meth:`Manifest.from_bytes`); its
own sha256 matches the one the dataset's record holds for it (when recorded); the shard sha256
and size it names are those the shard's record (or, without one, its offset index) says; and its
rows are exactly the members ``0..n-1`` of the shard's offset index. Otherwise an
``AtdataWarning`` says why and the shard is read as if it had no manifest: stale and hostile
manifests cost speed, never correctness. Positions are member numbers, turned into byte ranges
only through the (separately checked) offset index, so no manifest can point a read outside
its shard.
"""

import warnings

from .._redact import redact
from ..errors import AtdataWarning, ShardError, SourceError
from ..shards.shardset import ShardSet, check_sidecar_sha256
from .format import MANIFEST_SUFFIX, Manifest

__all__ = ["ManifestCache"]


class ManifestCache:
    """The checked manifests of a shard set's shards, loaded once each, on demand."""

    def __init__(self, shards: ShardSet) -> None:
        self.shards = shards
        self._loaded: dict[int, Manifest | None] = {}
        self._confirmed: set[int] = set()
        #: why shard i's manifest is not used (absent ones are not listed)
        self.rejected: dict[int, str] = {}

    def get(self, i: int) -> Manifest | None:
        if i not in self._loaded:
            self._loaded[i] = self._load(i)
        return self._loaded[i]

    def _load(self, i: int) -> Manifest | None:
        src = self.shards.source(i)
        where = f"{src.url}{MANIFEST_SUFFIX}"
        try:
            data = src.read_sidecar(MANIFEST_SUFFIX)
        except (SourceError, OSError) as exc:
            self._reject(i, where, f"it cannot be read: {exc}")
            return None
        if data is None:
            return None
        try:
            return self._check(i, data, where)
        except ShardError as exc:
            self._reject(i, where, str(exc))
            return None

    def _check(self, i: int, data: bytes, where: str) -> Manifest:
        expect = self.shards.expectation(i)
        check_sidecar_sha256(data, expect.manifest_sha256)
        manifest = Manifest.from_bytes(data, where)
        # what the offset index states, without loading it whole when a query prunes the shard
        # (the full index is loaded, and compared again, before any of its members is read)
        claim = self.shards.claimed(i)
        if claim is None:
            index = self.shards.offsets(i)
            claim = (index.sha256, index.shard_size, len(index))
        self._agrees(i, manifest, claim)
        return manifest

    def _agrees(self, i: int, manifest: Manifest, claim: tuple[str | None, int, int]) -> None:
        expect = self.shards.expectation(i)
        shard_sha = expect.sha256 or claim[0]
        shard_size = expect.size if expect.size is not None else claim[1]
        if shard_sha is None:
            raise ShardError("the shard's sha256 is not known, so the manifest cannot be checked")
        if manifest.shard_sha256 != shard_sha.lower() or manifest.shard_size != shard_size:
            raise ShardError(
                f"it describes a shard with sha256 {manifest.shard_sha256} and size "
                f"{manifest.shard_size}, but the shard has sha256 {shard_sha} and size "
                f"{shard_size} (stale: rebuild it with `atdata manifest build`)"
            )
        if manifest.count != claim[2]:
            raise ShardError(
                f"it describes {manifest.count} samples, the shard's offset index {claim[2]}"
            )

    def confirmed(self, i: int) -> Manifest | None:
        """Shard ``i``'s manifest, checked again against its fully loaded offset index (before
        members are read by it)."""
        manifest = self.get(i)
        if manifest is None or i in self._confirmed:
            return manifest
        index = self.shards.offsets(i)
        try:
            self._agrees(i, manifest, (index.sha256, index.shard_size, len(index)))
        except ShardError as exc:
            self.reject(i, str(exc))
            return None
        self._confirmed.add(i)
        return manifest

    def reject(self, i: int, reason: str) -> None:
        """Stop using shard ``i``'s manifest (its column block proved malformed)."""
        self._loaded[i] = None
        src = self.shards.source(i)
        self._reject(i, f"{src.url}{MANIFEST_SUFFIX}", reason)

    def _reject(self, i: int, where: str, reason: str) -> None:
        self.rejected[i] = reason
        warnings.warn(
            redact(f"manifest {where} is not used: {reason}. Reading the shard instead."),
            AtdataWarning,
            stacklevel=4,
        )
