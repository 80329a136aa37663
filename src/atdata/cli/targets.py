"""What a ``PATH|NAME`` argument of ``inspect``, ``preview`` and ``verify`` names, resolved once.

:func:`open_target` turns the argument into a :class:`Resolved` dataset, whatever the form:

=========================================  ==================================================
shards by path, directory, glob, braces,   ``kind="shards"``: the expanded shard URLs; no
or URL (http(s), s3, at:// blob, file)     schema (the commands infer one)
``@local/name[@v]``, ``atdata://``, or a   ``kind="index"``: the entry and its schema record,
bare ``name[@v]``                          the index open while the context lasts
``@handle/name[@v]``, ``at://`` entry or   ``kind="atmosphere"``: the resolved records, the
label URI                                  resolver current while the context lasts
=========================================  ==================================================

The commands then read and print through one code path each; only what differs between the
forms (a record's extra facts, how a shard is checked) is looked up on the :class:`Resolved`.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._remote import DATASET_COLLECTIONS, reader, record_kind, short_url
from ._samples import expand_shards
from ._shared import CliError, classify_target, open_index

if TYPE_CHECKING:
    from ..atmosphere import AtmosphereClient, ResolvedDataset
    from ..index import DatasetEntry, Index, SchemaEntry
    from ..schema import Schema
    from ..sources.base import ShardSource

__all__ = ["RemoteShard", "Resolved", "open_target", "remote_shards"]


@dataclass(frozen=True)
class RemoteShard:
    """One shard of a published dataset, as its entry record describes it."""

    url: str
    size: int | None
    cid: str | None
    sha256: str | None

    @property
    def shown(self) -> str:
        return short_url(self.url)

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "size": self.size, "cid": self.cid, "sha256": self.sha256}


@dataclass
class Resolved:
    """A dataset named on the command line, with what each form knows about it."""

    kind: Literal["shards", "index", "atmosphere"]
    text: str
    title: str
    urls: list[str]
    schema: "Schema | None" = None
    index: "Index | None" = None
    entry: "DatasetEntry | None" = None
    schema_record: "SchemaEntry | None" = None
    remote: "ResolvedDataset | None" = None
    client: "AtmosphereClient | None" = None

    def sources(self) -> Iterator["str | ShardSource"]:
        """The shards to read samples from, in order. Published shards are checked as they
        are read: blobs against their CID (before any byte is used), other URLs against the
        record's sha256 (once the shard has been read through)."""
        if self.remote is None:
            yield from self.urls
            return
        from ..sources import open_source
        from ..sources.cache import wrap_source

        for shard in remote_shards(self.remote):
            sha = shard.sha256 if not shard.url.startswith("at://") else None
            yield wrap_source(open_source(shard.url), expected_sha256=sha)


def remote_shards(resolved: "ResolvedDataset") -> list[RemoteShard]:
    """The shards of a published dataset with the size, CID and sha256 its record gives."""
    from ..atmosphere import BlobStorage

    storage = resolved.entry.storage
    blobs = storage.blobs if isinstance(storage, BlobStorage) else None
    rows = []
    for i, (url, checksum) in enumerate(zip(resolved.urls, resolved.checksums, strict=True)):
        sha = None
        if checksum is not None and checksum.algorithm == "sha256":
            sha = checksum.digest
        rows.append(
            RemoteShard(
                url,
                blobs[i].blob.size if blobs is not None else None,
                blobs[i].blob.cid if blobs is not None else None,
                sha,
            )
        )
    return rows


@contextlib.contextmanager
def open_target(text: str, command: str, *, datasets_only: bool = True) -> Iterator[Resolved]:
    """``text`` resolved to a dataset for ``command`` (its name, for messages). With
    ``datasets_only``, an ``at://`` record that is not a dataset entry or label, or a bare
    ``@handle``, is a CliError before anything is fetched; without it, resolving says what is
    wrong with it."""
    found = classify_target(text)
    if found.kind == "atmosphere":
        kind = record_kind(text)
        if datasets_only and kind is not None and kind not in DATASET_COLLECTIONS:
            raise CliError(
                f"{command} takes a dataset (@handle/name[@version], or an at:// entry or label "
                f"URI); {text!r:.200} is not one"
            )
        from ..atmosphere import resolve_dataset

        with reader() as client:
            remote = resolve_dataset(text, client=client)
            yield Resolved(
                "atmosphere",
                text,
                text,
                list(remote.urls),
                schema=remote.schema,
                remote=remote,
                client=client,
            )
    elif found.kind == "index":
        with open_index() as index:
            entry = index.entry(found.ref)
            record = index.get_schema(entry.schema_ref) if entry.schema_ref else None
            yield Resolved(
                "index",
                text,
                entry.ref,
                list(entry.urls),
                schema=record.schema if record is not None else None,
                index=index,
                entry=entry,
                schema_record=record,
            )
    else:
        yield Resolved("shards", text, text, expand_shards(text))
