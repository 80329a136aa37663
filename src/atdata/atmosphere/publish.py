"""Publishing index datasets to the atmosphere, and resolving published ones for loading.

:func:`publish_dataset` takes a dataset version from an :class:`atdata.index.Index` and makes it
discoverable from the publisher's ATProto repository:

1. its schema as a ``science.alt.dataset.schema`` record, once per distinct schema (the record
   key is the CID of the schema's content, so an identical schema is found and reused);
2. its shards: referenced by URL when they are all ``http(s)://`` (storageHttp) or all
   ``s3://`` (storageS3), otherwise uploaded as PDS blobs (storageBlobs; oversized shards are
   refused before anything is sent, or split at sample boundaries with ``split=True``);
3. a ``science.alt.dataset.entry`` record, reused when an entry with the same content exists;
4. a ``science.alt.dataset.label`` record ``name`` / ``version`` pointing at the entry.

Re-running it sends nothing new (no blob is uploaded when the entry already exists).
:func:`publish_lens` publishes an index lens as code references (never code).

:func:`resolve_dataset` goes the other way, for ``load_dataset``: from
``at://<did>/science.alt.dataset.entry/<rkey>`` (or a label URI) or ``@handle/name[@version]``
to the validated entry, its :class:`~atdata.schema.Schema` and the shard URLs to open
(``at://<did>/blob/<cid>?pds=...`` for blobs, see :mod:`atdata.sources.at`).
"""

import re
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

from ..errors import AtmosphereError, ConflictError, NotFoundError
from ..schema import Schema
from ..shards.info import Checksum, ShardInfo
from .blobs import BlobPlan, plan_and_upload, plan_blobs, recorded_blobs, sha256_of, upload_blobs
from .client import MAX_PAGE_SIZE, AtmosphereClient, StoredRecord
from .records import (
    ENTRY,
    LABEL,
    CodeReference,
    DatasetRecord,
    DatasetSize,
    LabelRecord,
    LensRecord,
    SchemaRecord,
    check_name,
)
from .resolve import Resolver
from .session import AtmosphereSession
from .storage import BlobStorage, HttpShard, HttpStorage, S3Shard, S3Storage, Storage
from .uri import AtUri, normalize_handle

__all__ = [
    "PublishedDataset",
    "ResolvedDataset",
    "parse_dataset_ref",
    "publish_dataset",
    "published_lineage",
    "publish_lens",
    "entry_shards",
    "resolve_dataset",
    "resolve_entry",
    "resolved_dataset",
]

StorageMode = Literal["auto", "urls", "blobs"]
_VERSION_PART = re.compile(r"(\d+)|(\D+)")


class _IndexLike(Protocol):
    """What publishing needs from :class:`atdata.index.Index`."""

    def entry(self, ref: str) -> Any: ...
    def get_schema(self, ref: str) -> Any: ...
    def get_lens(self, name: str) -> Any: ...


@dataclass(frozen=True)
class PublishedDataset:
    """What :func:`publish_dataset` wrote or found: URIs of the entry, schema and label."""

    entry: StoredRecord[DatasetRecord]
    schema: StoredRecord[SchemaRecord]
    label: StoredRecord[LabelRecord] | None
    #: False when everything already existed and nothing new was written.
    created: bool

    @property
    def uri(self) -> AtUri:
        return self.entry.uri


@dataclass(frozen=True)
class ResolvedDataset:
    """A published dataset, ready to load: its entry, schema and shard URLs."""

    uri: AtUri
    entry: DatasetRecord
    schema_uri: AtUri
    schema: Schema
    urls: list[str]
    checksums: list[Checksum | None]
    label: StoredRecord[LabelRecord] | None = None
    #: the CID of the entry record (as its PDS answered it)
    entry_cid: str = ""

    def sample_type(self) -> type:
        """A working sample type rebuilt from the schema (no code is generated)."""
        return self.schema.to_sample_type()


def _client(to: AtmosphereSession | AtmosphereClient) -> AtmosphereClient:
    if isinstance(to, AtmosphereClient):
        if to.session is None:
            raise AtmosphereError("publishing needs a logged-in session")
        return to
    return AtmosphereClient(to)


# ------------------------------------------------------------------------------- publishing
def publish_dataset(
    index: _IndexLike,
    ref: str,
    *,
    to: AtmosphereSession | AtmosphereClient,
    storage: StorageMode = "auto",
    split: bool = False,
    label: bool = True,
    replace_label: bool = False,
    s3_endpoint: str | None = None,
    s3_region: str | None = None,
) -> PublishedDataset:
    """Publish the index dataset version ``ref`` (``"mnist"``, ``"mnist@3"``) to ``to``.

    ``storage``: ``"auto"`` references shards by URL when all are http(s) or all s3 (else
    uploads them as blobs), ``"urls"`` insists on URLs, ``"blobs"`` always uploads.
    ``s3_endpoint`` / ``s3_region`` describe the bucket of s3:// shards for readers.
    A label with the same name and version pointing elsewhere raises ConflictError unless
    ``replace_label``.
    """
    client = _client(to)
    entry = index.entry(ref)
    if entry.schema_ref is None:
        raise AtmosphereError(
            f"dataset {entry.name}@{entry.version} has no schema; only datasets written with a "
            "sample type can be published (their schema is part of the record)"
        )
    schema_rec = index.get_schema(entry.schema_ref)
    schema: Schema = schema_rec.schema.with_version(schema_rec.version)
    name = check_name(entry.name)
    shards = list(entry.shards)
    me = client.session.did if client.session else ""

    # Independent steps overlap: the shards are read and hashed (CPU, GIL released) while the
    # schema record is checked or written and the account's entries and labels are listed.
    with ThreadPoolExecutor(3, thread_name_prefix="atdata-publish") as pool:
        planning = pool.submit(
            _choose_storage,
            shards,
            storage,
            split=split,
            client=client,
            s3_endpoint=s3_endpoint,
            s3_region=s3_region,
            recorded=True,
        )
        listing = pool.submit(lambda: list(client.entries(me, on_invalid="skip")))
        labelling = pool.submit(lambda: list(client.labels(me, on_invalid="skip")) if label else [])
        schema_stored = client.publish_schema(SchemaRecord.from_schema(schema))
        record_storage, plan = planning.result()
        existing = listing.result()
        existing_labels = labelling.result()
    # blobs named by the index's recorded digests (nothing read yet): when no entry of this
    # name has those blobs, the dataset is new, and each shard is read, checked, hashed and
    # uploaded in turn (overlapping); otherwise everything is planned first and compared
    fresh = plan is None and isinstance(record_storage, BlobStorage)
    if (
        fresh
        and isinstance(record_storage, BlobStorage)
        and any(_same_blobs(e.value, name, record_storage) for e in existing)
    ):
        record_storage, plan = _choose_storage(
            shards, "blobs", split=split, client=client, s3_endpoint=None, s3_region=None
        )
        fresh = False

    metadata = dict(entry.metadata) if entry.metadata else None
    candidate = DatasetRecord(
        name=name,
        schema_ref=str(schema_stored.uri),
        storage=record_storage,
        description=entry.description,
        tags=tuple(entry.tags),
        license=entry.license,
        size=DatasetSize(
            samples=entry.count,
            bytes=sum(s.size for s in entry.shards),
            shards=len(record_storage.checksums()),
        ),
        metadata=metadata,
        lineage=published_lineage(getattr(entry, "lineage", None)),
    )
    candidate.to_record()  # validate before anything is uploaded
    created = False
    stored_entry = None
    if not fresh:
        stored_entry = next((e for e in existing if e.value.same_content(candidate)), None)
    if stored_entry is None:
        if fresh:
            uploaded = plan_and_upload(client, shards, limit=client.max_blob_bytes())
            candidate = replace(candidate, storage=uploaded)
        elif plan is not None:
            uploaded = upload_blobs(
                client, shards, plan, limit=client.max_blob_bytes(), split=split
            )
            candidate = replace(candidate, storage=uploaded)
        stored_entry = client.publish(candidate)
        created = True

    stored_label = None
    if label:
        stored_label, made = _ensure_label(
            client,
            name,
            str(entry.version),
            stored_entry.uri,
            description=entry.description,
            replace=replace_label,
            existing=existing_labels,
        )
        created = created or made
    return PublishedDataset(stored_entry, schema_stored, stored_label, created)


def _choose_storage(
    shards: list[ShardInfo],
    mode: StorageMode,
    *,
    split: bool,
    client: AtmosphereClient,
    s3_endpoint: str | None,
    s3_region: str | None,
    recorded: bool = False,
) -> tuple[Storage, BlobPlan | None]:
    """(storage for the record, the blob plan when its blobs still have to be uploaded).

    With ``recorded``, blob storage may come from the index's recorded digests alone (see
    :func:`~atdata.atmosphere.blobs.recorded_blobs`; no plan: nothing was read)."""
    schemes = {urlsplit(s.url).scheme.lower() for s in shards}
    if mode != "blobs" and schemes <= {"http", "https"} and shards:
        return HttpStorage(tuple(HttpShard(s.url, _checksum(s)) for s in shards)), None
    if mode != "blobs" and schemes == {"s3"}:
        buckets = {urlsplit(s.url).netloc for s in shards}
        if len(buckets) == 1:
            bucket = buckets.pop()
            keys = [unquote(urlsplit(s.url).path.lstrip("/")) for s in shards]
            return (
                S3Storage(
                    bucket,
                    tuple(S3Shard(k, _checksum(s)) for k, s in zip(keys, shards, strict=True)),
                    region=s3_region,
                    endpoint=s3_endpoint,
                ),
                None,
            )
    if mode == "urls":
        raise AtmosphereError(
            "storage='urls' needs every shard at an http(s) URL or in one s3 bucket; got "
            + ", ".join(sorted(schemes))
        )
    limit = client.max_blob_bytes()
    quick = recorded_blobs(shards, limit=limit) if recorded and not split else None
    if quick is not None:
        return quick, None
    plan = plan_blobs(shards, limit=limit, split=split)
    return plan.storage, plan


def _same_blobs(entry: DatasetRecord, name: str, storage: BlobStorage) -> bool:
    """Whether ``entry`` is named ``name`` and stores exactly ``storage``'s blobs."""
    return (
        entry.name == name
        and isinstance(entry.storage, BlobStorage)
        and [b.blob.cid for b in entry.storage.blobs] == [b.blob.cid for b in storage.blobs]
    )


def _checksum(shard: ShardInfo) -> Checksum:
    digest = sha256_of(shard)
    if digest is None:
        raise AtmosphereError(f"shard {shard.url} has no sha256 checksum in the index")
    return Checksum.sha256(digest)


def _ensure_label(
    client: AtmosphereClient,
    name: str,
    version: str,
    entry_uri: AtUri,
    *,
    description: str | None,
    replace: bool,
    existing: list[StoredRecord[LabelRecord]] | None = None,
) -> tuple[StoredRecord[LabelRecord], bool]:
    """The label ``name``@``version`` pointing at ``entry_uri``, found among ``existing`` (the
    account's labels, listed now if not given) or written; and whether it was written."""
    me = client.session.did if client.session else ""
    if existing is None:
        existing = list(client.labels(me, on_invalid="skip"))
    for found in existing:
        if found.value.name != name or found.value.version != version:
            continue
        if found.value.dataset_uri == str(entry_uri):
            return found, False
        if not replace:
            raise ConflictError(
                f"label {name}@{version} in {me} already points at {found.value.dataset_uri}, "
                f"not {entry_uri}; publish a new version, or pass replace_label=True"
            )
        record = LabelRecord(name, str(entry_uri), version, description)
        assert found.uri.rkey is not None
        stored = client.put_record(LABEL, found.uri.rkey, record.to_record())
        return StoredRecord(stored.uri, stored.cid, record), True
    record = LabelRecord(name, str(entry_uri), version, description)
    return client.publish(record), True


def publish_lens(
    index: _IndexLike,
    name: str,
    *,
    to: AtmosphereSession | AtmosphereClient,
    repository: str,
    commit: str,
    getter_path: str | None = None,
    putter_path: str | None = None,
    branch: str | None = None,
) -> StoredRecord[LensRecord]:
    """Publish the index lens ``name`` as code references into ``repository`` at ``commit``.

    Both schemas are published (or reused). Paths default to the getter's and putter's
    ``module:qualname`` as ``module/path.py:qualname``. An identical lens record is reused.
    """
    client = _client(to)
    lens = index.get_lens(name)
    if lens.putter is None and putter_path is None:
        raise AtmosphereError(
            f"lens {name!r} has no putter; the lens lexicon needs one (pass putter_path=...)"
        )
    uris = []
    for ref in (lens.source_schema, lens.target_schema):
        rec = index.get_schema(ref)
        stored = client.publish_schema(
            SchemaRecord.from_schema(rec.schema.with_version(rec.version))
        )
        uris.append(str(stored.uri))
    record = LensRecord(
        name=check_name(lens.name),
        source_schema=uris[0],
        target_schema=uris[1],
        getter=CodeReference(repository, commit, getter_path or _code_path(lens.getter), branch),
        putter=CodeReference(repository, commit, putter_path or _code_path(lens.putter), branch),
        description=lens.description,
    )
    record.to_record()
    me = client.session.did if client.session else ""
    for found in client.lenses(me, on_invalid="skip"):
        if found.value.content() == record.content():
            return found
    return client.publish(record)


def _code_path(ref: str) -> str:
    module, _, qualname = ref.partition(":")
    return f"{module.replace('.', '/')}.py:{qualname}" if qualname else ref


# -------------------------------------------------------------------------------- resolving
def parse_dataset_ref(text: str) -> tuple[str, str, str | None]:
    """``"@handle/name[@version]"`` -> (handle, name, version or None).

    >>> parse_dataset_ref("@alice.example.com/team/mnist@3")
    ('alice.example.com', 'team/mnist', '3')
    """
    if not text.startswith("@") or "/" not in text:
        raise AtmosphereError(f"{text!r:.200} is not @handle/name[@version]")
    handle, _, rest = text[1:].partition("/")
    handle = normalize_handle(handle)
    name, sep, version = rest.rpartition("@")
    if not sep:
        name, version = rest, ""
    check_name(name, "name", text)
    if sep:
        check_name(version, "version", text)
    return handle, name, version or None


def resolve_dataset(
    ref: str | AtUri,
    *,
    resolver: Resolver | None = None,
    client: AtmosphereClient | None = None,
) -> ResolvedDataset:
    """The published dataset ``ref`` names, validated: entry, schema and shard URLs.

    ``ref`` is an entry or label ``at://`` URI or ``@handle/name[@version]`` (no version: the
    highest-versioned label of that name, else the newest entry of that name). Pass a
    ``resolver`` (or a ``client`` holding one); NotFoundError when nothing matches.
    """
    if client is None:
        if resolver is None:
            raise AtmosphereError("resolve_dataset needs resolver=Resolver(...) or client=...")
        client = AtmosphereClient(resolver=resolver)
    return resolved_dataset(client, *resolve_entry(ref, client))


def resolve_entry(
    ref: str | AtUri, client: AtmosphereClient
) -> tuple[StoredRecord[DatasetRecord], StoredRecord[LabelRecord] | None]:
    """The entry record ``ref`` names (see :func:`resolve_dataset`) and the label that led to
    it, if any; :func:`resolved_dataset` completes it (the schema)."""
    label: StoredRecord[LabelRecord] | None = None
    if isinstance(ref, AtUri) or ref.startswith("at://"):
        at = AtUri.parse(ref) if isinstance(ref, str) else ref
        if at.collection == LABEL:
            label = client.get_label(at)
            at = AtUri.parse(label.value.dataset_uri)
        if at.collection != ENTRY or at.rkey is None:
            raise AtmosphereError(f"{at} is not a dataset entry or label record URI")
        entry = client.get_entry(at)
    else:
        handle, name, version = parse_dataset_ref(ref)
        did = client.account_did(handle)
        labelled = _labelled_entry(client, did, name, version)
        if labelled is not None:
            label, entry = labelled
        elif version is None:
            entries = [e for e in client.entries(did, on_invalid="skip") if e.value.name == name]
            if not entries:
                raise NotFoundError(f"@{handle} has published no dataset named {name!r}")
            entry = max(entries, key=lambda e: e.value.created_at)
        else:
            raise NotFoundError(f"@{handle} has no label {name}@{version}")
    return entry, label


def _version_key(version: str | None, created_at: str) -> tuple[Any, ...]:
    if version is None:
        return (0, (), created_at)
    parts = tuple(
        (0, int(num), "") if num else (1, 0, text) for num, text in _VERSION_PART.findall(version)
    )
    return (1, parts, created_at)


def _labelled_entry(
    client: AtmosphereClient,
    did: str,
    name: str,
    version: str | None,
    *,
    page_size: int = MAX_PAGE_SIZE,
) -> tuple[StoredRecord[LabelRecord], StoredRecord[DatasetRecord]] | None:
    """The highest-versioned label of ``name`` (of ``version``, if given) and its entry.

    Every label page is read (the cursor is followed to its end, so no label is missed), but
    the entry of the best label so far is fetched beside the next page: when later pages change
    nothing (the usual case: the last page is empty) the entry costs no extra round trip.
    """

    def key(lab: StoredRecord[LabelRecord]) -> tuple[Any, ...]:
        return _version_key(lab.value.version, lab.value.created_at)

    best: StoredRecord[LabelRecord] | None = None
    fetching: tuple[StoredRecord[LabelRecord], Future[StoredRecord[DatasetRecord]]] | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="atdata-resolve") as pool:
        for page in client.label_pages(did, on_invalid="skip", page_size=page_size):
            for lab in page:
                if lab.value.name != name or (version is not None and lab.value.version != version):
                    continue
                if best is None or key(lab) > key(best):  # ties: the first, as max() picks
                    best = lab
            if best is not None and (fetching is None or fetching[0] is not best):
                fetching = (best, pool.submit(client.get_entry, best.value.dataset_uri))
        if best is None or fetching is None:
            return None
        return best, fetching[1].result()


def entry_shards(
    client: AtmosphereClient, entry: StoredRecord[DatasetRecord]
) -> tuple[list[str], list[Checksum | None]]:
    """The URLs to open an entry's shards by (blobs: with their PDS) and their checksums."""
    did = entry.uri.did
    storage = entry.value.storage
    pds = client.pds_for(did) if isinstance(storage, BlobStorage) else None
    return storage.shard_urls(did, pds), storage.checksums()


def resolved_dataset(
    client: AtmosphereClient,
    entry: StoredRecord[DatasetRecord],
    label: StoredRecord[LabelRecord] | None = None,
) -> ResolvedDataset:
    """The entry (from :func:`resolve_entry`) with its schema fetched and its shard URLs."""
    schema_stored = client.get_schema(entry.value.schema_ref)
    schema = schema_stored.value.to_schema(where=str(schema_stored.uri))
    urls, checksums = entry_shards(client, entry)
    return ResolvedDataset(
        uri=entry.uri,
        entry=entry.value,
        schema_uri=schema_stored.uri,
        schema=schema,
        urls=urls,
        checksums=checksums,
        label=label,
        entry_cid=entry.cid,
    )


#: the per-shard digests of a published lineage are left out past this many shards
MAX_PUBLISHED_LINEAGE_SHARDS = 500


def published_lineage(lineage: "Mapping[str, Any] | None") -> dict[str, Any] | None:
    """The lineage of an index entry as a dataset record carries it: parents, the transform's
    identity, per task the input and output shard digests, and how many samples failed.

    Local shard URLs and failure messages stay in the index (they can name private paths or
    hold sample data); past MAX_PUBLISHED_LINEAGE_SHARDS tasks the digests are left out and
    ``shardsOmitted`` holds their number.
    """
    if not lineage:
        return None
    tasks = list(lineage.get("tasks") or ())
    out: dict[str, Any] = {
        "parents": [
            {"ref": str(p.get("ref")), "cid": p.get("cid")} for p in lineage.get("parents") or ()
        ],
        "transform": dict(lineage.get("transform") or {}),
        "failures": len(lineage.get("failures") or ()),
    }
    if len(tasks) <= MAX_PUBLISHED_LINEAGE_SHARDS:
        out["shards"] = [
            {
                "inputs": [str(i.get("sha256")) for i in t.get("inputs") or ()],
                "outputs": [str(d) for d in t.get("output_sha256") or ()],
            }
            for t in tasks
        ]
    else:
        out["shardsOmitted"] = len(tasks)
    return out
