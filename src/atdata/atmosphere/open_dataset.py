"""``load_dataset`` for atmosphere references: ``at://...`` and ``@handle/name[@version]``.

The reference is resolved (:func:`~atdata.atmosphere.publish.resolve_entry`, then
:func:`~atdata.atmosphere.publish.resolved_dataset`) with the given
resolver, else the one made current by ``with Resolver(...).activate():``, else
:meth:`Resolver.default() <atdata.atmosphere.resolve.Resolver.default>` (``$ATDATA_PLC_URL`` and
``$ATDATA_HANDLE_RESOLVER`` when set, else the public services). Shards are opened by URL;
blobs are checked against their CIDs, and http(s)/S3 shards against the sha256 in the record
(as they stream, or when they enter the shard cache).
"""

from collections.abc import Mapping
from typing import Any

from ..dataset import Dataset
from ..net.ids import cid_digest
from ..shards.info import Checksum
from ..shards.shardset import CheckedOpener, ShardExpectation, ShardSet
from ..sources import at as _at  # registers at://
from ..sources.at import AtBlobSource
from ..sources.base import ShardSource
from ..sources.cache import ShardCache, wrap_source
from ..sources.chunked import ChunkDigests
from .client import AtmosphereClient
from .publish import ResolvedDataset, entry_shards, resolve_entry, resolved_dataset
from .resolve import Resolver, current_resolver
from .storage import BlobStorage, Storage

__all__ = ["PREFETCH_CLAIM_S", "BlobOpener", "blob_opener", "dataset_of", "load_reference"]

#: How long a first shard's download, started by :func:`load_reference`, waits to be opened.
PREFETCH_CLAIM_S = 10.0

del _at


def load_reference(
    ref: str,
    sample_type: type | None = None,
    *,
    resolver: Resolver | None = None,
    cache: Any = None,
) -> Dataset[Any]:
    """A :class:`~atdata.Dataset` of the published dataset ``ref``.

    Without ``sample_type`` the samples have the type rebuilt from the published schema (no
    code is generated). ``cache`` is a ``cache=`` setting as :class:`ShardCache.from_setting`
    reads it.

    Once the entry is known, the first shard's download (when it is a blob with chunk digests
    and no shard cache is used) starts beside the schema fetch: the first ``open()`` of that
    shard within :data:`PREFETCH_CLAIM_S` seconds takes it (see :meth:`BlobOpener.prefetch`).
    """
    resolver = resolver or current_resolver() or Resolver.default()
    client = AtmosphereClient(resolver=resolver)
    entry, label = resolve_entry(ref, client)
    urls, checksums = entry_shards(client, entry)
    opener = blob_opener(urls, checksums, entry.value.storage, ShardCache.from_setting(cache))
    if urls:
        opener.prefetch(urls[0])
    try:
        resolved = resolved_dataset(client, entry, label)
        return Dataset(ShardSet(list(urls), opener), sample_type or resolved.sample_type())
    except BaseException:
        opener.stop_prefetch()
        raise


def dataset_of(
    resolved: ResolvedDataset, sample_type: type | None = None, *, cache: ShardCache | None = None
) -> Dataset[Any]:
    """The Dataset over a resolved dataset's shards, each verified against its record.

    Blobs are verified against their CIDs by their source; http(s)/S3 shards against the
    sha256 in the record.
    """
    opener = blob_opener(resolved.urls, resolved.checksums, resolved.entry.storage, cache)
    # a ShardSet, not URL strings: "?pds=" in blob URLs is not a glob
    return Dataset(ShardSet(list(resolved.urls), opener), sample_type or resolved.sample_type())


def blob_opener(
    urls: list[str],
    checksums: list[Checksum | None],
    storage: Storage,
    cache: ShardCache | None,
) -> "BlobOpener":
    """The source factory for a dataset record's shards: each checked against the record."""
    expected = {
        url: c.digest
        for url, c in zip(urls, checksums, strict=True)
        if c is not None and c.algorithm == "sha256" and not url.startswith("at://")
    }
    # a blob's CID fixes its sha256 and the record its size: the offset index and manifest
    # fetched as blobs beside it must describe exactly that shard
    blobs: dict[str, ShardExpectation] = {}
    chunks: dict[str, ChunkDigests] = {}
    if isinstance(storage, BlobStorage):
        for url, b in zip(urls, storage.blobs, strict=True):
            digest = cid_digest(b.blob.cid, url).hex()
            blobs[url] = ShardExpectation(size=b.blob.size, sha256=digest)
            # digests that do not cover the blob exactly are not used (the CID still is)
            if b.chunks is not None and b.chunks.fits(b.blob.size):
                chunks[url] = b.chunks
    return BlobOpener(cache, expected, blobs, chunks)


class BlobOpener(CheckedOpener):
    """A :class:`CheckedOpener` that also gives blob sources the chunk digests their record
    holds, so that their streams hand out verified chunks as they arrive."""

    def __init__(
        self,
        cache: ShardCache | None,
        digests: Mapping[str, str],
        expectations: Mapping[str, ShardExpectation] | None = None,
        chunks: Mapping[str, ChunkDigests] | None = None,
    ) -> None:
        super().__init__(cache, digests, expectations)
        self.chunks = dict(chunks or {})
        self._started: dict[str, AtBlobSource] = {}  # prefetched, not yet handed out

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_started"] = {}  # a download does not travel
        return state

    def prefetch(self, url: str) -> None:
        """Start downloading ``url``'s blob now, chunk-verified as ever: the source this
        opener next makes for ``url`` hands that download to its first ``open()`` (within
        :data:`PREFETCH_CLAIM_S` seconds; after that the download stops and lets its bytes
        go). Nothing happens for shards without chunk digests or when a shard cache is used."""
        chunks = self.chunks.get(url)
        if chunks is None or self.cache is not None or url in self._started:
            return
        source = AtBlobSource(url, chunks=chunks)
        source.start_stream(claim_within=PREFETCH_CLAIM_S)
        self._started[url] = source

    def stop_prefetch(self) -> None:
        """Stop the downloads :meth:`prefetch` started that no source took yet."""
        for source in list(self._started.values()):
            source.stop_stream()
        self._started.clear()

    def __call__(self, url: str) -> ShardSource:
        chunks = self.chunks.get(url)
        if chunks is None:
            return super().__call__(url)
        source = self._started.pop(url, None) or AtBlobSource(url, chunks=chunks)
        return wrap_source(source, cache=self.cache, expected_sha256=self.digests.get(url))
