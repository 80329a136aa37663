"""``write_samples()``: write samples to local shards and get back a :class:`Dataset` over them.

``path`` is either one file (``"output/data.tar"``) or a shard pattern with a ``%d``-style
placeholder (``"output/data-%06d.tar"``). A file path that ends up needing more than one shard
(``maxcount``/``maxsize``) rolls over to a pattern derived from it: ``data.tar`` becomes
``data-000000.tar``, ``data-000001.tar``, ... (the stem, ``-``, six digits, the suffix). A file
path whose samples fit in one shard is written as exactly that file.

The returned dataset reads what was written (its sample type is that of the samples, or
:class:`~atdata.DictSample` for dicts) and keeps each shard's URL, checksum, count and size
in :attr:`WrittenDataset.shard_infos`.
"""

import dataclasses
import itertools
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, overload

from .dataset import Dataset
from .errors import SchemaError
from .manifest.build import ManifestBuilder
from .manifest.format import MANIFEST_SUFFIX
from .sample import DictSample
from .shards.info import ShardInfo
from .shards.offsets import OFFSETS_SUFFIX
from .shards.sink import LocalFileSink, ShardSink
from .shards.writer import Layout, ShardWriter

__all__ = ["WrittenDataset", "rollover_pattern", "write_samples"]

T = TypeVar("T")
_PLACEHOLDER = re.compile(r"(?<!%)(?:%%)*%[-0 #+]*\d*d")


class WrittenDataset(Dataset[T]):
    """A :class:`Dataset` over shards ``write_samples`` just wrote, with their :class:`ShardInfo`."""

    shard_infos: list[ShardInfo]
    """The shards written, in order: URL, checksum, sample count and size in bytes."""

    def __init__(self, shard_infos: list[ShardInfo], sample_type: type[T]) -> None:
        super().__init__([s.url for s in shard_infos], sample_type)
        self.shard_infos = list(shard_infos)


def rollover_pattern(path: str) -> str:
    """The shard pattern a single-file ``path`` rolls over to.

    >>> rollover_pattern("output/data.tar"), rollover_pattern("x/100%.tar")
    ('output/data-%06d.tar', 'x/100%%-%06d.tar')
    """
    head, name = os.path.split(path)
    stem, suffix = os.path.splitext(name)
    if not stem:
        stem, suffix = name, ""
    pattern = f"{stem.replace('%', '%%')}-%06d{suffix.replace('%', '%%')}"
    return os.path.join(head.replace("%", "%%"), pattern) if head else pattern


@overload
def write_samples(
    samples: Iterable[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    maxcount: int = ...,
    maxsize: int | None = ...,
    key_field: str | None = ...,
    manifests: bool = ...,
    layout: Layout | None = ...,
    durable: bool = ...,
) -> WrittenDataset[DictSample]: ...


@overload
def write_samples(
    samples: Iterable[T],
    path: str | os.PathLike[str],
    *,
    maxcount: int = ...,
    maxsize: int | None = ...,
    key_field: str | None = ...,
    manifests: bool = ...,
    layout: Layout | None = ...,
    durable: bool = ...,
) -> WrittenDataset[T]: ...


def write_samples(
    samples: Iterable[Any],
    path: str | os.PathLike[str],
    *,
    maxcount: int = 10_000,
    maxsize: int | None = None,
    key_field: str | None = None,
    manifests: bool = True,
    layout: Layout | None = None,
    durable: bool = True,
) -> WrittenDataset[Any]:
    """Write ``samples`` to ``path`` (one file, or a ``%06d`` pattern); returns a Dataset over them.

    Memory stays bounded by one shard's indexed scalar fields: the input is consumed as a
    stream. ``manifests`` writes a ``<shard>.manifest`` beside each shard (statistics and a
    column block of the scalar fields, see :mod:`atdata.manifest`) for ``Dataset.where``. See the module
    docstring for how a single-file path rolls over.

    ``layout``: by default the sample type's (one ``.msgpack`` member per sample, or one member
    per field for types declared with :func:`atdata.member`); ``"members"`` also writes dicts
    and DictSamples as one member per key (``{"jpg": b"...", "cls": 3}``), readable by
    WebDataset's own decoders.

    ``durable``: by default every shard and sidecar is fsynced before it is renamed into place
    (what ``Index.write`` always does: an index never points at data that a
    power loss could take). ``durable=False`` skips the fsyncs for scratch output; files still
    appear whole or not at all to running processes, and the bytes are the same.

    >>> import tempfile, os, atdata
    >>> d = tempfile.mkdtemp()
    >>> ds = write_samples([atdata.DictSample(i=i) for i in range(3)], os.path.join(d, "x.tar"))
    >>> [s["i"] for s in ds], [os.path.basename(s.url) for s in ds.shard_infos]
    ([0, 1, 2], ['x.tar'])
    """
    text = os.fspath(path)
    single = _PLACEHOLDER.search(text) is None
    pattern = rollover_pattern(text) if single else text
    seen: list[type] = []

    def typed(items: Iterable[Any]) -> Iterable[Any]:
        """``items``, noting the first one's type (then passed on without a Python frame)."""
        it = iter(items)
        for item in it:
            seen.append(type(item))
            return itertools.chain((item,), it)
        return ()

    first, second = pattern % 0, pattern % 1

    def sink_for(location: str) -> ShardSink:
        """A single-file path: shard 0 is written as the file itself and renamed to the derived
        pattern only if a second shard starts (after shard 0 and its sidecar were committed)."""
        if single and location == first:
            return LocalFileSink(text, durable=durable)
        if single and location == second:
            os.replace(text, first)
            os.replace(text + OFFSETS_SUFFIX, first + OFFSETS_SUFFIX)
            if os.path.exists(text + MANIFEST_SUFFIX):
                os.replace(text + MANIFEST_SUFFIX, first + MANIFEST_SUFFIX)
        return LocalFileSink(location, durable=durable)

    writer: ShardWriter[Any]
    with ShardWriter(
        pattern,
        maxcount=maxcount,
        maxsize=maxsize,
        key_field=key_field,
        sink_factory=sink_for,
        sidecar_builder=ManifestBuilder if manifests else None,
        layout=layout,
    ) as writer:
        writer.write_all(typed(samples))
    infos = list(writer.shards)
    if not infos:
        raise SchemaError(f"no samples to write to {text!r}: the input was empty")
    if single and len(infos) > 1:  # shard 0 was renamed when shard 1 started
        infos[0] = dataclasses.replace(infos[0], url=first)
    kind = seen[0]
    sample_type: type[Any] = DictSample if issubclass(kind, dict | DictSample) else kind
    return WrittenDataset(infos, sample_type)
