"""Building manifests for shards that already exist (``atdata manifest build``): one streaming
pass per shard that decodes only the scalar fields of each sample (arrays stay views)."""

import hashlib
from collections.abc import Callable
from typing import Any

from .._msgpack_view import unpack_map_view
from ..errors import InvalidArgumentError, ShardError
from ..shards.reader import iter_members
from ..shards.shardset import ShardSet
from ..shards.sink import LocalFileSink, write_whole
from ..shards.tar import split_name
from .build import ManifestBuilder
from .fields import FieldKind, indexed_fields
from .format import MANIFEST_SUFFIX

__all__ = ["build_manifests"]

_SAMPLE_SUFFIX = "msgpack"


def build_manifests(
    shards: ShardSet,
    sample_type: type | None = None,
    *,
    on_shard: Callable[[str, int], None] | None = None,
) -> list[str]:
    """Write ``<shard>.manifest`` beside each local shard of ``shards``; the paths written.

    Fields come from ``sample_type`` (see :func:`~atdata.manifest.fields.indexed_fields`), else
    from the scalar values of the first sample. ``on_shard(url, samples)`` reports progress.
    """
    fields: dict[str, FieldKind] | None = (
        indexed_fields(sample_type) if sample_type is not None else None
    )
    written: list[str] = []
    for i in range(len(shards)):
        src = shards.source(i)
        path = src.local_path()
        if path is None:
            raise InvalidArgumentError(
                f"manifests are built beside local shards only; {src.url} is not a local file"
            )
        index = shards.offsets(i)
        sha256, size = index.sha256, index.shard_size
        if sha256 is None:
            sha256, size = _hash(path)
        builder = ManifestBuilder(fields)
        rows = 0
        for member, body in iter_members(src):
            _key, suffix = split_name(member.name)
            if suffix != _SAMPLE_SUFFIX:
                continue
            data = unpack_map_view(memoryview(body))
            if not isinstance(data, dict):
                raise ShardError(f"{src.url}: member {member.name!r} is not a msgpack map")
            builder.add(_scalars(data))
            rows += 1
        blob = builder.finish(size=size, sha256=sha256, count=len(index))
        if blob is None:
            raise ShardError(
                f"{src.url}: {rows} sample bodies for {len(index)} samples; cannot build a "
                "manifest for shards with samples lacking a .msgpack member"
            )
        if fields is None:
            fields = builder._fields  # the same fields for every shard of the dataset
        write_whole(LocalFileSink, path + MANIFEST_SUFFIX, blob)
        written.append(path + MANIFEST_SUFFIX)
        if on_shard is not None:
            on_shard(src.url, len(index))
    return written


def _scalars(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if not isinstance(v, memoryview | bytes)}


def _hash(path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size
