"""The dataset methods of :class:`~atdata.index.Index`: writing and inserting versions, reading
them back (entries, history, a :class:`~atdata.Dataset`, verification) and removing them."""

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from itertools import chain
from typing import TYPE_CHECKING, Any

from ..errors import ConflictError, InvalidArgumentError
from ..manifest.build import ManifestBuilder
from ..shards.info import ShardInfo
from ..shards.shardset import ShardExpectation
from ..shards.writer import Layout, ShardWriter
from ..sources import ShardCache, ShardSource, open_source, wrap_source
from ..stores.base import (
    DataStore,
    ShardProblem,
    validate_dataset_name,
    verify_shards,
)
from . import datasets as ds_ops
from ._facade_base import IndexBase, schema_of
from .entries import DatasetEntry
from .ingest import (
    copy_shard,
    inspect_shard,
    normalize_url,
    shard_expectation,
)
from .refs import is_remote_ref, local_ref, name_prefix, parse_ref
from .repository import Repository

if TYPE_CHECKING:
    from ..dataset import Dataset
    from .remote import RemoteDataset

__all__ = ["DatasetMethods"]


class DatasetMethods(IndexBase):
    """Write, insert, get, load, verify and remove dataset versions (part of ``Index``)."""

    if TYPE_CHECKING:  # provided by SchemaMethods in the assembled Index

        def get_schema_type(self, ref: str) -> type: ...

    # -- datasets: writing -----------------------------------------------------------------------
    def write(
        self,
        samples: Iterable[Any],
        name: str,
        *,
        maxcount: int = 10_000,
        maxsize: int | None = None,
        key_field: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        license: str | None = None,
        repo: str | None = None,
        layout: Layout | None = None,
    ) -> DatasetEntry:
        """Write ``samples`` as a new version of ``name``, straight into the repository's store.

        Samples are serialized once, into shards in the store, with checksums, counts and
        offset indexes; the schema of their type is added with the entry, in the same
        transaction. On any failure nothing is recorded and the written shards are deleted.
        ``layout`` is as for :func:`atdata.write_samples`: by default the sample type's own;
        ``"members"`` also writes dicts and DictSamples as one tar member per key.
        """
        validate_dataset_name(name)
        _check_annotations(metadata, tags)
        target = self.repository(repo)
        store = _store_of(target)
        iterator = iter(samples)
        try:
            first = next(iterator)
        except StopIteration:
            raise InvalidArgumentError(f"no samples to write to {name!r}") from None
        schema = schema_of(type(first))
        version, write_id = ds_ops.reserve_version(target, name)
        try:
            writer: ShardWriter[Any] = ShardWriter(
                store.shard_pattern(name, version, write_id),
                maxcount=maxcount,
                maxsize=maxsize,
                key_field=key_field,
                sink_factory=store.open_sink,
                layout=layout,
                sidecar_builder=ManifestBuilder,
            )
            with writer:
                writer.write(first)
                writer.write_all(iterator)
            shards = list(writer.shards)
            return ds_ops.commit_entry(
                target,
                name=name,
                version=version,
                schema=schema,
                shards=shards,
                stored=True,
                description=description,
                metadata=metadata,
                tags=tags,
                license=license,
            )
        except BaseException:
            ds_ops.release_version(target, name, version, write_id)
            raise

    def insert(
        self,
        source: Any,
        name: str,
        *,
        copy: bool = False,
        sample_type: type | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        license: str | None = None,
        repo: str | None = None,
    ) -> DatasetEntry:
        """Register existing shards as a new version of ``name``.

        ``source`` is an :class:`atdata.Dataset` or what one accepts (path, URL, brace pattern,
        glob, list). Every shard is hashed and counted. With ``copy=True`` the shards are copied
        into the store (and deleted with the entry); otherwise the entry points at them where
        they are (and removing it never deletes them).
        """
        validate_dataset_name(name)
        _check_annotations(metadata, tags)
        target = self.repository(repo)
        urls, found_type = _urls_and_type(source)
        schema = schema_of(sample_type or found_type)
        common: dict[str, Any] = {
            "name": name,
            "schema": schema,
            "description": description,
            "metadata": metadata,
            "tags": tags,
            "license": license,
        }
        if not copy:
            if target.store is not None:
                owned = [u for u in urls if target.store.owns(u)]
                if owned:
                    raise ConflictError(
                        f"{owned[0]!r} belongs to another entry's shards in the store of "
                        f"repository {target.name!r}; insert with copy=True, or label that entry"
                    )
            shards = [inspect_shard(u) for u in urls]
            return ds_ops.commit_entry(target, version=None, shards=shards, stored=False, **common)
        store = _store_of(target)
        version, write_id = ds_ops.reserve_version(target, name)
        try:
            pattern = store.shard_pattern(name, version, write_id)
            shards = [copy_shard(u, pattern % i, store.open_sink) for i, u in enumerate(urls)]
            return ds_ops.commit_entry(
                target, version=version, shards=shards, stored=True, **common
            )
        except BaseException:
            ds_ops.release_version(target, name, version, write_id)
            raise

    # -- datasets: reading -----------------------------------------------------------------------
    def get(self, ref: str) -> "DatasetEntry | RemoteDataset":
        """The dataset version named by ``"name"``, ``"name@3"``, ``"name@latest"``,
        ``"@local/name@3"`` or ``"atdata://<repo>/dataset/name@3"`` (no version: the latest);
        with ``Index(atmosphere=...)`` also ``"@handle/name[@version]"`` or an entry's
        ``at://`` URI (a :class:`~atdata.index.remote.RemoteDataset`)."""
        if is_remote_ref(ref):
            return self._view(ref).get(ref)
        return self.entry(ref)

    def entry(self, ref: str) -> DatasetEntry:
        """The dataset version ``ref`` names in this index's own repositories (as :meth:`get`
        without the atmosphere)."""
        ref = local_ref(ref)
        parsed = parse_ref(ref, "dataset")
        return self._first_found(
            parsed.repo,
            "dataset",
            ref,
            lambda repo: ds_ops.get_entry(repo, parsed.name, parsed.dataset_version),
        )

    @property
    def datasets(self) -> Iterator[DatasetEntry]:
        """The latest version of every dataset, by repository then name, read lazily."""
        return chain.from_iterable(ds_ops.iter_latest(r) for r in self._repos.values())

    def list_datasets(self) -> "list[DatasetEntry | RemoteDataset]":
        """The latest version of every local dataset, then (with ``Index(atmosphere=...)``)
        every dataset entry published in the user's ATProto repository."""
        found: list[DatasetEntry | RemoteDataset] = list(self.datasets)
        if self._atmosphere is not None:
            found.extend(self._atmosphere.datasets())
        return found

    def history(self, name: str, *, repo: str | None = None) -> list[DatasetEntry]:
        """Every version of ``name``, oldest first (from the first repository that has it)."""
        parsed = parse_ref(name, "dataset")
        if parsed.version is not None:
            raise InvalidArgumentError(
                f"history() takes a dataset name without a version, got {name!r}"
            )
        return self._first_found(
            parsed.repo or repo,
            "dataset",
            name,
            lambda r: list(ds_ops.iter_entries(r, name_prefix(parsed.name))) or None,
        )

    def load(
        self, ref: "str | DatasetEntry | RemoteDataset", sample_type: type | None = None
    ) -> "Dataset[Any]":
        """An :class:`atdata.Dataset` of a dataset version (a reference or an entry, local or
        published); without ``sample_type``, samples have the type rebuilt from the recorded
        schema. Published shards are verified against their records as they are read."""
        from ..dataset import Dataset

        if not isinstance(ref, DatasetEntry) and (not isinstance(ref, str) or is_remote_ref(ref)):
            return self._view(ref).load(ref, sample_type)
        entry = ref if isinstance(ref, DatasetEntry) else self.entry(ref)
        if sample_type is None and entry.schema_ref is not None:
            sample_type = self.get_schema_type(entry.schema_ref)
        repo = self._repos.get(entry.repo)
        opener = _EntryShardOpener(repo.store if repo is not None else None, entry.shards)
        return Dataset(entry.urls, sample_type, source_factory=opener)

    def verify(
        self, ref: str, *, on_shard: "Callable[[ShardInfo], None] | None" = None
    ) -> list[ShardProblem]:
        """Re-hash a dataset version's shards; the mismatches (empty when all is well).

        ``on_shard`` is called after each shard is checked (for progress reporting).
        """
        entry = self.entry(ref)
        store = self._repos[entry.repo].store
        problems: list[ShardProblem] = []
        for shard in entry.shards:
            problems += store.verify([shard]) if store is not None else verify_shards([shard])
            if on_shard is not None:
                on_shard(shard)
        return problems

    # -- datasets: removing ----------------------------------------------------------------------
    def remove(
        self, ref: str, *, all_versions: bool = False, force: bool = False
    ) -> list[DatasetEntry]:
        """Remove a dataset version (no version: the latest; ``all_versions``: every one).

        The entry goes first, then its stored shards (shards registered with ``copy=False`` are
        never deleted). A labelled version is refused unless ``force=True``, which removes its
        labels too. Returns the removed entries.
        """
        parsed = parse_ref(ref, "dataset")
        if all_versions:
            if parsed.version is not None:
                raise InvalidArgumentError(
                    f"all_versions=True takes a name without a version, got {ref!r}"
                )
            targets = self.history(ref)
        else:
            targets = [self.entry(ref)]
        return [
            ds_ops.remove_version(self._repos[e.repo], e.name, e.version, force=force)
            for e in targets
        ]

    def gc(self, *, pending_age: timedelta = timedelta(hours=24)) -> ds_ops.GarbageReport:
        """Finish interrupted removals and delete shards of abandoned writes; what was cleaned
        (a list), with malformed records skipped (an AtdataWarning each) in ``.skipped``."""
        report = ds_ops.GarbageReport()
        for repo in self._repos.values():
            found = ds_ops.collect_garbage(repo, pending_age=pending_age)
            report += [f"{repo.name}:{k}" for k in found]
            report.skipped += found.skipped
        return report


class _EntryShardOpener:
    """Opens the shards of one entry for reading (a Dataset's ``source_factory``; picklable).

    A shard inside the repository's store is opened by the store when it can (an S3 store
    reads with its own endpoint and credentials, not the process-wide S3 config); any other
    URL by scheme. Every shard is checked against its recorded sha256 and size before a
    sample is read from it (IntegrityError naming the shard on mismatch): local files the
    first time they are used after they changed, remote ones when downloaded (through the shard
    cache when one is on, ``$ATDATA_CACHE_DIR``, whose entries are re-checked when used).
    """

    def __init__(self, store: DataStore | None, shards: Sequence[ShardInfo]) -> None:
        self.store = store
        self.digests = {
            s.url: s.checksum.digest for s in shards if s.checksum.algorithm.lower() == "sha256"
        }
        self.sizes = {s.url: s.size for s in shards if s.size > 0}
        self.cache = ShardCache.from_setting(None)
        self.records = {s.url: s for s in shards}

    def expectation(self, url: str) -> ShardExpectation | None:
        """What the entry records about the shard at ``url`` (bounds reads, checks sidecars)."""
        return shard_expectation(self.records.get(url))

    def __call__(self, url: str) -> ShardSource:
        store_opener = getattr(self.store, "open_source", None)
        if self.store is not None and callable(store_opener) and self.store.owns(url):
            source: ShardSource = store_opener(url)
        else:
            source = open_source(url)
        return wrap_source(
            source,
            cache=self.cache,
            expected_sha256=self.digests.get(url),
            expected_size=self.sizes.get(url),
        )


def _store_of(repo: Repository) -> DataStore:
    if repo.store is None:
        raise InvalidArgumentError(
            f"repository {repo.name!r} has no data store; give it one, or insert(..., copy=False)"
        )
    return repo.store


def _check_annotations(metadata: Mapping[str, Any] | None, tags: Sequence[str]) -> None:
    """Refuse bad metadata and tags before any shard is written."""
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise TypeError(f"tags must be a list of strings, got {tags!r}")
    if metadata is not None:
        try:
            json.dumps(dict(metadata), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"metadata must be a JSON-compatible mapping: {exc}") from None


def _urls_and_type(source: Any) -> tuple[list[str], type | None]:
    from ..dataset import Dataset

    if isinstance(source, Dataset):
        sample_type = source.sample_type
        return [normalize_url(u) for u in source.urls], sample_type
    from ..shards.urls import expand_urls

    return [normalize_url(u) for u in expand_urls(source)], None
