"""Registering shards that already exist: hash them, count their samples, optionally copy them.

Counting uses the shard's offset-index sidecar when it matches the shard's bytes (size and
sha256), and scans the tar otherwise. A copy is streamed into a store sink while it is hashed,
and gets a sidecar (copied when valid, rebuilt when missing or stale).
"""

import hashlib
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from .._fs import hash_stream
from ..errors import ShardError, SourceError
from ..manifest.format import MANIFEST_SUFFIX, Manifest
from ..shards.info import Checksum, ShardInfo
from ..shards.offsets import OFFSETS_SUFFIX, OffsetIndex
from ..shards.reader import scan_offsets
from ..shards.shardset import ShardExpectation
from ..shards.sink import ShardSink, write_whole
from ..sources import ShardSource, open_source, scheme_of

__all__ = ["copy_shard", "inspect_shard", "normalize_url", "shard_expectation"]


def normalize_url(url: str) -> str:
    """Plain relative paths become absolute (records must not depend on the working directory)."""
    if scheme_of(url) == "file" and not url.startswith("file:"):
        return os.path.abspath(url)
    return url


def shard_expectation(record: ShardInfo | None) -> ShardExpectation | None:
    """What a shard record promises, in the form readers check shards and sidecars against."""
    if record is None:
        return None

    def sha(c: Checksum | None) -> str | None:
        return c.digest.lower() if c is not None and c.algorithm.lower() == "sha256" else None

    return ShardExpectation(
        record.size,
        sha(record.checksum),
        sha(record.sidecar_checksum),
        sha(record.manifest_checksum),
    )


def inspect_shard(url: str) -> ShardInfo:
    """Hash and count an existing shard in place (its sidecar's digest is recorded when the
    sidecar describes exactly these bytes)."""
    source = open_source(url)
    digest, size = _stream(source, None)
    index, sidecar = _offsets(source, digest, size)
    side = None if sidecar is None else Checksum.sha256(hashlib.sha256(sidecar).hexdigest())
    manifest = _fresh_manifest(source, digest, size)
    kept = None if manifest is None else Checksum.sha256(hashlib.sha256(manifest).hexdigest())
    return ShardInfo(url, Checksum.sha256(digest), len(index), size, side, kept)


def copy_shard(url: str, location: str, open_sink: Callable[[str], ShardSink]) -> ShardInfo:
    """Copy the shard at ``url`` to ``location`` (through ``open_sink``), with its sidecar."""
    source = open_source(url)
    sink = open_sink(location)
    try:
        digest, size = _stream(source, sink)
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    index, _ = _offsets(source, digest, size)
    sidecar = Checksum.sha256(write_whole(open_sink, location + OFFSETS_SUFFIX, index.to_bytes()))
    manifest = _fresh_manifest(source, digest, size)
    kept = None
    if manifest is not None:  # the manifest travels with its shard
        kept = Checksum.sha256(write_whole(open_sink, location + MANIFEST_SUFFIX, manifest))
    return ShardInfo(location, Checksum.sha256(digest), len(index), size, sidecar, kept)


def _fresh_manifest(source: ShardSource, digest: str, size: int) -> bytes | None:
    """The shard's manifest sidecar when it describes exactly these bytes (else None: a stale
    or malformed manifest is not recorded or copied)."""
    try:
        data = source.read_sidecar(MANIFEST_SUFFIX)
        if data is None:
            return None
        manifest = Manifest.from_bytes(data, source.url + MANIFEST_SUFFIX)
    except (ShardError, SourceError):
        return None
    if manifest.shard_sha256 != digest or manifest.shard_size != size:
        return None
    return data


def _stream(source: ShardSource, sink: ShardSink | None) -> tuple[str, int]:
    try:
        with source.open() as stream:
            return hash_stream(stream, on_chunk=None if sink is None else sink.write)
    except OSError as exc:
        raise SourceError(f"cannot read shard {source.url!r}: {exc}") from exc


def _offsets(source: ShardSource, digest: str, size: int) -> tuple[OffsetIndex, bytes | None]:
    """The shard's sidecar (with its bytes) if it describes these exact bytes, else one built by
    scanning (and None). A local shard is scanned anyway (cheap: mmap) and the sidecar must list
    exactly its members; a remote one is not downloaded twice (readers still check each member
    header a sidecar points at)."""
    try:
        data = source.read_sidecar(OFFSETS_SUFFIX)
        index = None if data is None else OffsetIndex.from_bytes(data, source.url + OFFSETS_SUFFIX)
    except ShardError:
        data, index = None, None
    if index is None or index.sha256 != digest or index.shard_size != size:
        data, index = None, None
    scanned = None
    if index is None or source.local_path() is not None:
        scanned = scan_offsets(source, max_size=size)
    if index is not None and (scanned is None or _same_members(index, scanned)):
        return index, data
    if scanned is None:
        scanned = scan_offsets(source, max_size=size)
    return (
        OffsetIndex(
            scanned.keys,
            np.asarray(scanned.header_offsets, dtype=np.int64),
            np.asarray(scanned.sizes, dtype=np.int64),
            shard_size=size,
            sha256=digest,
            starts=scanned.starts,
            ends=scanned.ends,
        ),
        None,
    )


def _same_members(a: OffsetIndex, b: OffsetIndex) -> bool:
    def same(x: "np.ndarray[Any, Any] | None", y: "np.ndarray[Any, Any] | None") -> bool:
        return (x is None and y is None) or (
            x is not None and y is not None and np.array_equal(x, y)
        )

    return (
        a.keys == b.keys
        and same(a.header_offsets, b.header_offsets)
        and same(a.sizes, b.sizes)
        and same(a.starts, b.starts)
        and same(a.ends, b.ends)
    )
