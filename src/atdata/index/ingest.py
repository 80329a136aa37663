"""Registering shards that already exist: hash them, count their samples, optionally copy them.

Counting uses the shard's offset-index sidecar when it matches the shard's bytes (size and
sha256), and scans the tar otherwise. A copy is streamed into a store sink while it is hashed,
and gets a sidecar (copied when valid, rebuilt when missing or stale).
"""

import hashlib
import os
from collections.abc import Callable

import numpy as np

from ..errors import ShardError, SourceError
from ..shards.offsets import OFFSETS_SUFFIX, OffsetIndex
from ..shards.reader import load_offsets, scan_offsets
from ..shards.sink import ShardSink
from ..sources import ShardSource, open_source, scheme_of
from ..stores.base import Checksum, ShardRecord

__all__ = ["copy_shard", "inspect_shard", "normalize_url"]

_CHUNK = 1 << 20


def normalize_url(url: str) -> str:
    """Plain relative paths become absolute (records must not depend on the working directory)."""
    if scheme_of(url) == "file" and not url.startswith("file:"):
        return os.path.abspath(url)
    return url


def inspect_shard(url: str) -> ShardRecord:
    """Hash and count an existing shard in place."""
    source = open_source(url)
    digest, size = _stream(source, None)
    index = _offsets(source, digest, size)
    return ShardRecord(url, Checksum("sha256", digest), len(index), size)


def copy_shard(url: str, location: str, open_sink: Callable[[str], ShardSink]) -> ShardRecord:
    """Copy the shard at ``url`` to ``location`` (through ``open_sink``), with its sidecar."""
    source = open_source(url)
    sink = open_sink(location)
    try:
        digest, size = _stream(source, sink)
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    index = _offsets(source, digest, size)
    side = open_sink(location + OFFSETS_SUFFIX)
    try:
        side.write(index.to_bytes())
        side.commit()
    except BaseException:
        side.abort()
        raise
    return ShardRecord(location, Checksum("sha256", digest), len(index), size)


def _stream(source: ShardSource, sink: ShardSink | None) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    try:
        with source.open() as stream:
            while chunk := stream.read(_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
                if sink is not None:
                    sink.write(chunk)
    except OSError as exc:
        raise SourceError(f"cannot read shard {source.url!r}: {exc}") from exc
    return hasher.hexdigest(), size


def _offsets(source: ShardSource, digest: str, size: int) -> OffsetIndex:
    """The shard's sidecar if it describes these exact bytes, else one built by scanning."""
    try:
        index = load_offsets(source)
    except ShardError:
        index = None
    if index is not None and index.sha256 == digest and index.shard_size == size:
        return index
    scanned = scan_offsets(source)
    return OffsetIndex(
        scanned.keys,
        np.asarray(scanned.header_offsets, dtype=np.int64),
        np.asarray(scanned.sizes, dtype=np.int64),
        shard_size=size,
        sha256=digest,
    )
