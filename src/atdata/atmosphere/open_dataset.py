"""``load_dataset`` for atmosphere references: ``at://...`` and ``@handle/name[@version]``.

The reference is resolved (:func:`~atdata.atmosphere.publish.resolve_dataset`) with the given
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
from ..shards.shardset import CheckedOpener, ShardExpectation, ShardSet
from ..sources import at as _at  # registers at://
from ..sources.at import AtBlobSource
from ..sources.base import ShardSource
from ..sources.cache import ShardCache, wrap_source
from ..sources.chunked import ChunkDigests
from .publish import ResolvedDataset, resolve_dataset
from .resolve import Resolver, current_resolver
from .storage import BlobStorage

__all__ = ["dataset_of", "load_reference"]

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
    """
    resolver = resolver or current_resolver() or Resolver.default()
    resolved = resolve_dataset(ref, resolver=resolver)
    return dataset_of(resolved, sample_type, cache=ShardCache.from_setting(cache))


def dataset_of(
    resolved: ResolvedDataset, sample_type: type | None = None, *, cache: ShardCache | None = None
) -> Dataset[Any]:
    """The Dataset over a resolved dataset's shards, each verified against its record.

    Blobs are verified against their CIDs by their source; http(s)/S3 shards against the
    sha256 in the record.
    """
    expected = {
        url: c.digest
        for url, c in zip(resolved.urls, resolved.checksums, strict=True)
        if c is not None and c.algorithm == "sha256" and not url.startswith("at://")
    }

    # a blob's CID fixes its sha256 and the record its size: the offset index and manifest
    # fetched as blobs beside it must describe exactly that shard
    storage = resolved.entry.storage
    blobs: dict[str, ShardExpectation] = {}
    chunks: dict[str, ChunkDigests] = {}
    if isinstance(storage, BlobStorage):
        for url, b in zip(resolved.urls, storage.blobs, strict=True):
            digest = cid_digest(b.blob.cid, url).hex()
            blobs[url] = ShardExpectation(size=b.blob.size, sha256=digest)
            # digests that do not cover the blob exactly are not used (the CID still is)
            if b.chunks is not None and b.chunks.fits(b.blob.size):
                chunks[url] = b.chunks

    # a ShardSet, not URL strings: "?pds=" in blob URLs is not a glob
    shards = ShardSet(list(resolved.urls), BlobOpener(cache, expected, blobs, chunks))
    return Dataset(shards, sample_type or resolved.sample_type())


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

    def __call__(self, url: str) -> ShardSource:
        chunks = self.chunks.get(url)
        if chunks is None:
            return super().__call__(url)
        return wrap_source(
            AtBlobSource(url, chunks=chunks),
            cache=self.cache,
            expected_sha256=self.digests.get(url),
        )
