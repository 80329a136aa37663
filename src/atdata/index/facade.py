"""The :class:`Index` facade: datasets, schemas, labels and lenses across repositories.

The facade holds the logic (versions, CIDs, schema bumps, routing names to repositories); each
repository's provider only stores records and each store only holds bytes. Short names are
looked up in the repositories in order (the first one is the default, where writes go);
``atdata://<repo>/<kind>/<name>`` references go straight to their repository.
"""

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from itertools import chain
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConflictError, InvalidArgumentError, NotFoundError
from ..manifest.build import ManifestBuilder
from ..sample import DictSample
from ..schema import Schema
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
from . import labels as label_ops
from . import lenses as lens_ops
from .entries import DatasetEntry, LabelEntry, LensEntry, SchemaEntry
from .ingest import (
    copy_shard,
    inspect_shard,
    normalize_url,
    shard_expectation,
)
from .providers.base import Provider
from .providers.sqlite import SQLiteProvider
from .providers.url import INDEX_URL_ENV, open_provider, provider_from_url
from .refs import name_prefix, parse_ref
from .repository import Repository, atdata_home
from .schemas import add_schema_tx, classify_change, schema_versions_tx

if TYPE_CHECKING:
    from ..atmosphere import (
        AtmosphereClient,
        AtmosphereSession,
        LensRecord,
        PublishedDataset,
        StoredRecord,
    )
    from ..dataset import Dataset

__all__ = ["Index"]

SchemaSpec = type | Schema | str

_T = TypeVar("_T")


class Index:
    """Datasets, schemas, labels and lenses, kept in one or more repositories.

    ``Index()`` is SQLite at ``$ATDATA_HOME/index.db`` with shards under ``$ATDATA_HOME/data``
    (``ATDATA_HOME`` defaults to ``~/.atdata``), unless ``ATDATA_INDEX_URL`` names another
    provider (``sqlite:///path``, ``redis://...``, ``postgresql://...``).
    ``Index(provider="redis", url=...)`` / ``Index(provider="postgres", dsn=...)`` pick one by
    name; ``Index(provider, data_store)`` uses your own pair as the repository ``local`` (a missing
    half gets its default); ``Index(repositories=[...])`` holds several, the first the default.
    """

    def __init__(
        self,
        provider: Provider | str | None = None,
        data_store: DataStore | None = None,
        *,
        url: str | None = None,
        dsn: str | None = None,
        repositories: Sequence[Repository] | None = None,
        home: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(provider, str) or url is not None or dsn is not None:
            provider = open_provider(
                provider if isinstance(provider, str) else None, url=url, dsn=dsn
            )
        elif provider is None and repositories is None and os.environ.get(INDEX_URL_ENV):
            provider = provider_from_url(os.environ[INDEX_URL_ENV])
        if repositories is not None:
            if provider is not None or data_store is not None:
                raise InvalidArgumentError(
                    "pass either repositories=[...] or provider/store, not both"
                )
            repos = list(repositories)
            if not repos:
                raise InvalidArgumentError("an Index needs at least one repository")
        else:
            root = os.fspath(home) if home is not None else str(atdata_home())
            if provider is None:
                provider = SQLiteProvider(os.path.join(os.path.expanduser(root), "index.db"))
            from ..stores.disk import LocalDiskStore

            if data_store is None or (
                isinstance(data_store, LocalDiskStore) and data_store.default_root and home
            ):  # LocalDiskStore() means the index's own data directory
                data_store = LocalDiskStore(os.path.join(os.path.expanduser(root), "data"))
            repos = [Repository("local", provider, data_store)]
        names = [r.name for r in repos]
        if len(set(names)) != len(names):
            raise InvalidArgumentError(f"repository names must be unique, got {names}")
        self._repos: dict[str, Repository] = {r.name: r for r in repos}
        self._default = repos[0]
        self._types: dict[str, type] = {}

    def __repr__(self) -> str:
        return f"Index(repositories={list(self._repos)})"

    # -- repositories ----------------------------------------------------------------------------
    @property
    def repositories(self) -> list[Repository]:
        return list(self._repos.values())

    def repository(self, name: str | None = None) -> Repository:
        """The repository called ``name`` (None: the default one)."""
        if name is None:
            return self._default
        try:
            return self._repos[name]
        except KeyError:
            raise NotFoundError(
                f"no repository {name!r} in this index (have {', '.join(self._repos)})"
            ) from None

    def close(self) -> None:
        for repo in self._repos.values():
            repo.close()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        schema = _schema_of(type(first))
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
        schema = _schema_of(sample_type or found_type)
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
    def get(self, ref: str) -> DatasetEntry:
        """The dataset version named by ``"name"``, ``"name@3"``, ``"name@latest"`` or
        ``"atdata://<repo>/dataset/name@3"`` (no version: the latest)."""
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

    def list_datasets(self) -> list[DatasetEntry]:
        return list(self.datasets)

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

    def load(self, ref: "str | DatasetEntry", sample_type: type | None = None) -> "Dataset[Any]":
        """An :class:`atdata.Dataset` of a dataset version (a reference or an entry); without
        ``sample_type``, samples have the type rebuilt from the recorded schema."""
        from ..dataset import Dataset

        entry = ref if isinstance(ref, DatasetEntry) else self.get(ref)
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
        entry = self.get(ref)
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
            targets = [self.get(ref)]
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

    # -- schemas -----------------------------------------------------------------------------------
    def add_schema(
        self, sample_type: type | Schema, *, version: str | None = None, repo: str | None = None
    ) -> str:
        """Store the schema of ``sample_type``; returns its reference
        (``atdata://local/schema/Name@1.0.0``). An unchanged schema keeps its version; see
        :mod:`atdata.index.schemas` for the bump rule."""
        schema = _schema_of(sample_type)
        if schema is None:
            raise InvalidArgumentError("DictSample and dict have no schema to add")
        target = self.repository(repo)
        with target.provider.transaction() as tx:
            return add_schema_tx(tx, schema, repo=target.name, version=version).ref

    def get_schema(self, ref: str) -> SchemaEntry:
        """The schema record named by ``"Name"``, ``"Name@1.0.0"`` or a full reference."""
        parsed = parse_ref(ref, "schema")

        def find(repo: Repository) -> SchemaEntry | None:
            versions = schema_versions_tx(repo.provider, parsed.name, repo.name)
            for rec in reversed(versions):
                if parsed.version is None or rec.version == parsed.version:
                    return rec
            return None

        return self._first_found(parsed.repo, "schema", ref, find)

    def get_schema_type(self, ref: str) -> type:
        """A working sample type rebuilt from a stored schema (no code generated or imported).

        The same reference always gives the same class object in one Index.
        """
        record = self.get_schema(ref)
        cached = self._types.get(record.ref)
        if cached is None:
            cached = self._types.setdefault(record.ref, record.schema.to_sample_type())
        return cached

    @property
    def schemas(self) -> Iterator[SchemaEntry]:
        """Every version of every schema, by repository then name, read lazily."""
        return chain.from_iterable(
            (SchemaEntry.from_record(rec, repo=r.name) for _, rec in r.provider.iter_scan("schema"))
            for r in self._repos.values()
        )

    def list_schemas(self) -> list[SchemaEntry]:
        return list(self.schemas)

    # -- labels ------------------------------------------------------------------------------------
    def label(
        self, label: str, target: str, *, description: str | None = None, replace: bool = False
    ) -> LabelEntry:
        """Make ``label`` name the dataset version ``target`` (no version: the current latest).

        Moving an existing label to a different version needs ``replace=True``.
        """
        entry = self.get(target)
        parsed = parse_ref(target, "dataset")
        return label_ops.set_label(
            self._repos[entry.repo],
            label,
            entry.name,
            parsed.dataset_version or entry.version,
            description=description,
            replace=replace,
        )

    def get_label(self, label: str) -> LabelEntry:
        """The label record; ``index.get(record.target)`` is the dataset version it names."""
        parsed = parse_ref(label, "label")
        return self._first_found(
            parsed.repo, "label", label, lambda repo: label_ops.get_label(repo, parsed.name)
        )

    @property
    def labels(self) -> Iterator[LabelEntry]:
        return chain.from_iterable(label_ops.iter_labels(r) for r in self._repos.values())

    def list_labels(self) -> list[LabelEntry]:
        return list(self.labels)

    def remove_label(self, label: str) -> LabelEntry:
        found = self.get_label(label)
        label_ops.remove_label(self._repos[found.repo], found.name)
        return found

    # -- lenses ------------------------------------------------------------------------------------
    def add_lens(
        self,
        lens: Any,
        *,
        name: str | None = None,
        source: SchemaSpec | None = None,
        target: SchemaSpec | None = None,
        putter: Callable[..., Any] | str | None = None,
        description: str | None = None,
        replace: bool = False,
        repo: str | None = None,
    ) -> LensEntry:
        """Record a lens by reference: an :class:`atdata.Lens`, or a getter function (or
        ``"module:qualname"``) with ``source`` and ``target`` types, schemas or schema refs.

        The schemas of source and target types are added in the same transaction.
        """
        getter: Any = lens
        if hasattr(lens, "source") and hasattr(lens, "view") and hasattr(lens, "_get"):
            getter = lens._get
            putter = putter if putter is not None else getattr(lens, "_put", None)
            source = source if source is not None else lens.source
            target = target if target is not None else lens.view
            name = name or getattr(lens, "name", None)
        if source is None or target is None:
            raise InvalidArgumentError("add_lens needs source= and target= (types or schema refs)")
        if name is None:
            name = getattr(getter, "__name__", None) or str(getter).rpartition(":")[2]
        return lens_ops.add_lens(
            self.repository(repo),
            name=name,
            source=source,
            target=target,
            getter=getter,
            putter=putter,
            description=description,
            replace=replace,
        )

    def get_lens(self, name: str) -> LensEntry:
        parsed = parse_ref(name, "lens")

        def find(repo: Repository) -> LensEntry | None:
            record = repo.provider.get("lens", parsed.name)
            return None if record is None else LensEntry.from_record(record, repo=repo.name)

        return self._first_found(parsed.repo, "lens", name, find)

    @property
    def lenses(self) -> Iterator[LensEntry]:
        return chain.from_iterable(lens_ops.iter_lenses(r) for r in self._repos.values())

    def list_lenses(self) -> list[LensEntry]:
        return list(self.lenses)

    def find_lenses(
        self, source: SchemaSpec | None = None, view: SchemaSpec | None = None
    ) -> list[LensEntry]:
        """Recorded lenses from ``source`` to ``view``; each is a type (matching any stored
        version with the same fields), ``"Name"`` (any version), ``"Name@1.0.0"`` or None (any).
        """
        match_source = self._schema_matcher(source)
        match_view = self._schema_matcher(view)
        return [
            rec
            for rec in self.lenses
            if match_source(rec.repo, rec.source_schema) and match_view(rec.repo, rec.target_schema)
        ]

    def remove_lens(self, name: str) -> LensEntry:
        found = self.get_lens(name)
        with self._repos[found.repo].provider.transaction() as tx:
            tx.delete("lens", found.name)
        return found

    # -- the atmosphere ----------------------------------------------------------------------------
    def publish(
        self,
        name: str,
        *,
        to: "AtmosphereSession | AtmosphereClient",
        **options: Any,
    ) -> "PublishedDataset":
        """Publish the dataset version ``name`` (``"mnist"``, ``"mnist@3"``) to the atmosphere:
        its schema, an entry record and a label ``name``/``version`` in the ATProto repository
        of ``to`` (a logged-in :class:`~atdata.atmosphere.AtmosphereSession`).

        Anyone can then load it with ``load_dataset("@<handle>/<name>[@<version>]")``. Shards
        at http(s) or S3 URLs are referenced by URL; others are uploaded as PDS blobs. Running
        it again writes nothing new. ``options`` are those of
        :func:`atdata.atmosphere.publish_dataset`: ``storage="auto"|"urls"|"blobs"``,
        ``split=True`` (cut shards over the PDS blob limit at sample boundaries),
        ``replace_label=True``, ``label=False``, ``s3_endpoint``, ``s3_region``.
        Needs ``pip install 'atdata[atmosphere]'``.
        """
        from ..atmosphere.publish import publish_dataset

        return publish_dataset(self, name, to=to, **options)

    def publish_lens(
        self,
        name: str,
        *,
        to: "AtmosphereSession | AtmosphereClient",
        repository: str,
        commit: str,
        **options: Any,
    ) -> "StoredRecord[LensRecord]":
        """Publish the recorded lens ``name`` to the atmosphere as references to its code in
        ``repository`` at ``commit`` (never the code itself), with both of its schemas.

        ``options`` are those of :func:`atdata.atmosphere.publish_lens` (``getter_path``,
        ``putter_path``, ``branch``). An identical lens record already published is reused.
        """
        from ..atmosphere.publish import publish_lens

        return publish_lens(self, name, to=to, repository=repository, commit=commit, **options)

    # -- internals ---------------------------------------------------------------------------------
    def _repos_for(self, name: str | None) -> list[Repository]:
        return [self.repository(name)] if name is not None else list(self._repos.values())

    def _first_found(
        self, repo: str | None, what: str, ref: str, find: Callable[[Repository], _T | None]
    ) -> _T:
        """What ``find`` gives in the first repository searched for ``repo`` (every repository,
        in order, when None) where it gives something; NotFoundError naming ``what`` and ``ref``
        when none does."""
        for r in self._repos_for(repo):
            found = find(r)
            if found is not None:
                return found
        raise NotFoundError(f"no {what} {ref!r} in {self._where(repo)}")

    def _where(self, repo: str | None) -> str:
        return f"repository {repo!r}" if repo else f"repositories {', '.join(self._repos)}"

    def _schema_matcher(self, spec: SchemaSpec | None) -> Callable[[str, str], bool]:
        if spec is None:
            return lambda _repo, _ref: True
        if isinstance(spec, str):
            want = parse_ref(spec, "schema")

            def by_ref(repo: str, ref: str) -> bool:
                got = parse_ref(ref, "schema")
                return (
                    got.name == want.name
                    and (want.version is None or got.version == want.version)
                    and (want.repo is None or want.repo == repo)
                )

            return by_ref
        schema = spec if isinstance(spec, Schema) else Schema.from_type(spec)
        matching: set[str] = set()
        for repo in self._repos.values():
            for rec in schema_versions_tx(repo.provider, schema.name, repo.name):
                if classify_change(rec.schema, schema) == "none":
                    matching.add(rec.ref)
        return lambda _repo, ref: ref in matching


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


def _schema_of(sample_type: type | Schema | None) -> Schema | None:
    if sample_type is None or sample_type is DictSample or sample_type is dict:
        return None
    if isinstance(sample_type, Schema):
        return sample_type
    return Schema.from_type(sample_type)


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
