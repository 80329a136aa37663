"""Typed ``science.alt.dataset`` records: schema, entry (with its storage union), lens, label.

Each record class has ``to_record()`` (the JSON value to publish, checked against the lexicon
first) and ``from_record(value, uri=...)`` (checked against the lexicon, then against atdata's
rules for safe use). Reading never runs anything: shard locations must be ``http(s)`` URLs or
plain S3 keys, names must not look like paths, code references stay references, metadata is
plain data, and every string and list is bounded by the lexicon. A failure raises
:class:`~atdata.atmosphere.lexicon.RecordValidationError` (an ``AtmosphereError``) naming the
record URI and the JSON path.
"""

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeAlias
from urllib.parse import quote, urlsplit

from ..errors import SchemaError
from ..net.ids import record_cid
from ..schema import Schema
from ..shards.info import Checksum
from ..sources.at import blob_url
from ._jsonschema import JSON_SCHEMA_FORMAT, from_json_schema, to_json_schema
from .lexicon import NAMESPACE, RecordValidationError, lexicon, validate_record
from .uri import AtUri

__all__ = [
    "BLOB_MIME_TYPE",
    "ENTRY",
    "LABEL",
    "LENS",
    "SCHEMA",
    "BlobRef",
    "BlobShard",
    "BlobStorage",
    "CodeReference",
    "DatasetSize",
    "DatasetRecord",
    "HttpShard",
    "HttpStorage",
    "LabelRecord",
    "LensRecord",
    "S3Shard",
    "S3Storage",
    "SchemaRecord",
    "Storage",
    "check_name",
    "now",
]

SCHEMA = f"{NAMESPACE}.schema"
ENTRY = f"{NAMESPACE}.entry"
LENS = f"{NAMESPACE}.lens"
LABEL = f"{NAMESPACE}.label"
STORAGE_HTTP = f"{NAMESPACE}.storageHttp"
STORAGE_S3 = f"{NAMESPACE}.storageS3"
STORAGE_BLOBS = f"{NAMESPACE}.storageBlobs"
BLOB_MIME_TYPE = "application/x-tar"
SCHEMA_RECORD_VERSION = 1
MAX_METADATA_BYTES = 100_000

_HEX = re.compile(r"^[0-9a-f]+\Z")
_ALGORITHM = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}\Z")
_DIGEST_HEX_LEN = {"sha256": 64, "sha512": 128, "blake3": 64, "sha1": 40, "md5": 32}
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]\Z")
_REGION = re.compile(r"^[a-z0-9-]{1,50}\Z")
_COMMIT = re.compile(r"^[0-9a-fA-F]{7,40}\Z")
_LANGUAGE = re.compile(r"^[a-z][a-z0-9+#-]{0,49}\Z")
_UNSAFE_NAME = re.compile(r"[\\:@\x00-\x1f\x7f]")


def now() -> str:
    """The current UTC time as an RFC 3339 string with milliseconds (``...Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fail(message: str, path: str, where: str | None) -> RecordValidationError:
    return RecordValidationError(message, path=path, where=where)


def check_name(value: str, path: str = "$.name", where: str | None = None) -> str:
    """``value`` if it is safe as a dataset, label or lens name, else an error.

    Names may have ``/``-separated parts (``team/mnist``), but no empty, ``.`` or ``..`` part,
    no leading or trailing ``/``, no ``\\``, ``:``, ``@`` or control characters, and no
    surrounding spaces: a name never works as a path outside where it is put.
    """
    parts = value.split("/")
    if (
        not value
        or value != value.strip()
        or any(p in ("", ".", "..") for p in parts)
        or _UNSAFE_NAME.search(value) is not None
    ):
        raise _fail(
            f"{value!r:.100} is not a usable name: '/'-separated parts, none empty, '.' or '..', "
            "and no '\\', ':', '@', control characters or surrounding spaces",
            path,
            where,
        )
    return value


def _check_http_url(url: str, path: str, where: str | None) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail(
            f"{url!r:.120} is not an http(s) URL; shards are only fetched over http(s)", path, where
        )
    if parts.username is not None or parts.password is not None:
        raise _fail("URLs in records must not carry credentials", path, where)
    if re.search(r"[\s\x00-\x1f\x7f\\]", url):
        raise _fail(f"{url!r:.120} contains whitespace or control characters", path, where)
    try:
        parts.port  # noqa: B018
    except ValueError:
        raise _fail(f"{url!r:.120} has a bad port", path, where) from None
    return url


def _check_relative_path(value: str, path: str, where: str | None, what: str) -> str:
    segments = value.split("/")
    if (
        not value
        or value.startswith("/")
        or "\\" in value
        or any(s in (".", "..") for s in segments)
        or re.search(r"[\x00-\x1f\x7f]", value)
    ):
        raise _fail(f"{what} {value!r:.120} must be a relative path without '..'", path, where)
    return value


def _opt(mapping: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        mapping[key] = value


# ----------------------------------------------------------------------------- shared pieces
def checksum_from_record(data: Mapping[str, Any], path: str, where: str | None) -> Checksum:
    """The :class:`~atdata.shards.info.Checksum` at ``path`` of a record, checked: a known-form
    algorithm name and a hex digest of that algorithm's length (both lowercased)."""
    algorithm, digest = str(data["algorithm"]).lower(), str(data["digest"]).lower()
    if _ALGORITHM.match(algorithm) is None:
        raise _fail(f"unknown checksum algorithm {algorithm!r:.40}", f"{path}.algorithm", where)
    want = _DIGEST_HEX_LEN.get(algorithm)
    if _HEX.match(digest) is None or (want is not None and len(digest) != want):
        raise _fail(f"{digest!r:.140} is not a hex {algorithm} digest", f"{path}.digest", where)
    return Checksum(algorithm, digest)


@dataclass(frozen=True)
class BlobRef:
    """A blob in a repository: its CID, size in bytes and MIME type."""

    cid: str
    size: int
    mime_type: str = BLOB_MIME_TYPE

    def to_dict(self) -> dict[str, Any]:
        return {
            "$type": "blob",
            "ref": {"$link": self.cid},
            "mimeType": self.mime_type,
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BlobRef":
        return cls(cid=data["ref"]["$link"], size=data["size"], mime_type=data["mimeType"])


@dataclass(frozen=True)
class DatasetSize:
    samples: int | None = None
    bytes: int | None = None
    shards: int | None = None

    def to_dict(self) -> dict[str, int]:
        out: dict[str, int] = {}
        _opt(out, "samples", self.samples)
        _opt(out, "bytes", self.bytes)
        _opt(out, "shards", self.shards)
        return out


# ------------------------------------------------------------------------------- storage
@dataclass(frozen=True)
class HttpShard:
    url: str
    checksum: Checksum


@dataclass(frozen=True)
class HttpStorage:
    """Shards served over http(s)."""

    shards: tuple[HttpShard, ...]

    TYPE: ClassVar[str] = STORAGE_HTTP

    def to_dict(self) -> dict[str, Any]:
        return {
            "$type": self.TYPE,
            "shards": [{"url": s.url, "checksum": s.checksum.to_dict()} for s in self.shards],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str, where: str | None) -> "HttpStorage":
        shards = []
        for i, s in enumerate(data["shards"]):
            p = f"{path}.shards[{i}]"
            url = _check_http_url(s["url"], f"{p}.url", where)
            shards.append(
                HttpShard(url, checksum_from_record(s["checksum"], f"{p}.checksum", where))
            )
        return cls(tuple(shards))

    def shard_urls(self, did: str, pds: str | None = None) -> list[str]:
        return [s.url for s in self.shards]

    def checksums(self) -> list[Checksum | None]:
        return [s.checksum for s in self.shards]


@dataclass(frozen=True)
class S3Shard:
    key: str
    checksum: Checksum


@dataclass(frozen=True)
class S3Storage:
    """Shards as objects in one S3 bucket (``endpoint`` for S3-compatible services)."""

    bucket: str
    shards: tuple[S3Shard, ...]
    region: str | None = None
    endpoint: str | None = None

    TYPE: ClassVar[str] = STORAGE_S3

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"$type": self.TYPE, "bucket": self.bucket}
        _opt(out, "region", self.region)
        _opt(out, "endpoint", self.endpoint)
        out["shards"] = [{"key": s.key, "checksum": s.checksum.to_dict()} for s in self.shards]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str, where: str | None) -> "S3Storage":
        bucket = data["bucket"]
        if _BUCKET.match(bucket) is None or ".." in bucket:
            raise _fail(f"{bucket!r:.80} is not an S3 bucket name", f"{path}.bucket", where)
        region = data.get("region")
        if region is not None and _REGION.match(region) is None:
            raise _fail(f"{region!r:.60} is not a region name", f"{path}.region", where)
        endpoint = data.get("endpoint")
        if endpoint is not None:
            _check_http_url(endpoint, f"{path}.endpoint", where)
        shards = []
        for i, s in enumerate(data["shards"]):
            p = f"{path}.shards[{i}]"
            key = _check_relative_path(s["key"], f"{p}.key", where, "S3 key")
            shards.append(S3Shard(key, checksum_from_record(s["checksum"], f"{p}.checksum", where)))
        return cls(bucket, tuple(shards), region, endpoint)

    def shard_urls(self, did: str, pds: str | None = None) -> list[str]:
        return [f"s3://{self.bucket}/{quote(s.key, safe='/-_.~')}" for s in self.shards]

    def checksums(self) -> list[Checksum | None]:
        return [s.checksum for s in self.shards]


@dataclass(frozen=True)
class BlobShard:
    blob: BlobRef
    checksum: Checksum | None = None


@dataclass(frozen=True)
class BlobStorage:
    """Shards held as blobs in the publishing account's repository."""

    blobs: tuple[BlobShard, ...]

    TYPE: ClassVar[str] = STORAGE_BLOBS

    def to_dict(self) -> dict[str, Any]:
        out = []
        for b in self.blobs:
            item: dict[str, Any] = {"blob": b.blob.to_dict()}
            if b.checksum is not None:
                item["checksum"] = b.checksum.to_dict()
            out.append(item)
        return {"$type": self.TYPE, "blobs": out}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str, where: str | None) -> "BlobStorage":
        blobs = []
        for i, b in enumerate(data["blobs"]):
            p = f"{path}.blobs[{i}]"
            ref = BlobRef.from_dict(b["blob"])
            checksum = b.get("checksum")
            blobs.append(
                BlobShard(
                    ref,
                    checksum_from_record(checksum, f"{p}.checksum", where) if checksum else None,
                )
            )
        return cls(tuple(blobs))

    def shard_urls(self, did: str, pds: str | None = None) -> list[str]:
        """``at://<did>/blob/<cid>[?pds=...]`` for each blob (see :mod:`atdata.sources.at`)."""
        return [blob_url(did, b.blob.cid, pds) for b in self.blobs]

    def checksums(self) -> list[Checksum | None]:
        return [b.checksum for b in self.blobs]


Storage: TypeAlias = HttpStorage | S3Storage | BlobStorage
_STORAGE: dict[str, Any] = {c.TYPE: c for c in (HttpStorage, S3Storage, BlobStorage)}


# -------------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class SchemaRecord:
    """A ``science.alt.dataset.schema`` record: a sample type published as JSON Schema."""

    name: str
    version: str
    json_schema: Mapping[str, Any]
    description: str | None = None
    metadata: Mapping[str, Any] | None = None
    created_at: str = field(default_factory=now)
    schema_type: str = "jsonSchema"

    NSID: ClassVar[str] = SCHEMA

    @classmethod
    def from_schema(
        cls, schema: Schema, *, metadata: Mapping[str, Any] | None = None
    ) -> "SchemaRecord":
        """The record for ``schema`` (its description is cut to the lexicon's limit)."""
        return cls(
            name=schema.name,
            version=schema.version,
            json_schema=to_json_schema(schema),
            description=_fit(schema.description, SCHEMA, "description"),
            metadata=metadata,
        )

    def to_schema(self, *, where: str | None = None) -> Schema:
        """The :class:`~atdata.schema.Schema` this record describes (no code is generated)."""
        try:
            return from_json_schema(
                self.json_schema, name=self.name, version=self.version, description=self.description
            )
        except SchemaError as exc:
            raise _fail(f"the schema cannot be used: {exc}", exc.path, where) from None

    def content(self) -> dict[str, Any]:
        """The record without ``createdAt``: what makes two schema records the same."""
        out: dict[str, Any] = {
            "$type": SCHEMA,
            "name": self.name,
            "version": self.version,
            "schemaType": self.schema_type,
            "schema": dict(self.json_schema),
            "atdataSchemaVersion": SCHEMA_RECORD_VERSION,
        }
        _opt(out, "description", self.description)
        if self.metadata is not None:
            out["metadata"] = dict(self.metadata)
        return out

    def record_key(self) -> str:
        """The CID (dag-cbor, sha2-256) of :meth:`content`; the key atdata publishes it under."""
        return record_cid(self.content())

    def to_record(self) -> dict[str, Any]:
        out = self.content()
        out["createdAt"] = self.created_at
        SchemaRecord.from_record(out, uri=f"schema {self.name}@{self.version}")
        return out

    @classmethod
    def from_record(cls, value: Any, *, uri: str | None = None) -> "SchemaRecord":
        where = uri or "schema record"
        validate_record(SCHEMA, value, where=where)
        if value["schemaType"] != "jsonSchema":
            raise _fail(
                f"schemaType {value['schemaType']!r:.60} is not supported", "$.schemaType", where
            )
        body = value["schema"]
        if body.get("$type") != JSON_SCHEMA_FORMAT:
            raise _fail(
                f"schema format {body.get('$type')!r:.80} is not supported", "$.schema.$type", where
            )
        layout = value.get("atdataSchemaVersion", 1)
        if layout > SCHEMA_RECORD_VERSION:
            raise _fail(
                f"record layout version {layout} is newer than this atdata understands "
                f"({SCHEMA_RECORD_VERSION}); upgrade atdata",
                "$.atdataSchemaVersion",
                where,
            )
        record = cls(
            name=value["name"],
            version=value["version"],
            json_schema=body,
            description=value.get("description"),
            metadata=value.get("metadata"),
            created_at=value["createdAt"],
            schema_type=value["schemaType"],
        )
        record.to_schema(where=where)  # reject unusable schemas when read, not when used
        return record


# --------------------------------------------------------------------------------- entry
@dataclass(frozen=True)
class DatasetRecord:
    """A ``science.alt.dataset.entry`` record: one immutable version of a dataset."""

    name: str
    schema_ref: str
    storage: Storage
    description: str | None = None
    tags: tuple[str, ...] = ()
    license: str | None = None
    size: DatasetSize | None = None
    metadata: Mapping[str, Any] | None = None
    created_at: str = field(default_factory=now)

    NSID: ClassVar[str] = ENTRY

    def content(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "$type": ENTRY,
            "name": self.name,
            "schemaRef": self.schema_ref,
            "storage": self.storage.to_dict(),
        }
        _opt(out, "description", self.description)
        if self.tags:
            out["tags"] = list(self.tags)
        _opt(out, "license", self.license)
        if self.size is not None:
            out["size"] = self.size.to_dict()
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out

    def to_record(self) -> dict[str, Any]:
        out = self.content()
        out["createdAt"] = self.created_at
        DatasetRecord.from_record(out, uri=f"dataset entry {self.name!r}")
        return out

    @classmethod
    def from_record(cls, value: Any, *, uri: str | None = None) -> "DatasetRecord":
        where = uri or "entry record"
        validate_record(ENTRY, value, where=where)
        name = check_name(value["name"], "$.name", where)
        schema_ref = AtUri.parse(value["schemaRef"])
        if schema_ref.collection != SCHEMA or schema_ref.rkey is None:
            raise _fail(f"{schema_ref} is not a schema record URI", "$.schemaRef", where)
        storage_raw = value["storage"]
        kind = _STORAGE.get(storage_raw["$type"])
        if kind is None:
            raise _fail(
                f"storage type {storage_raw['$type']!r:.80} is not supported",
                "$.storage.$type",
                where,
            )
        size = value.get("size")
        return cls(
            name=name,
            schema_ref=str(schema_ref),
            storage=kind.from_dict(storage_raw, "$.storage", where),
            description=value.get("description"),
            tags=tuple(value.get("tags", ())),
            license=value.get("license"),
            size=DatasetSize(**{k: size.get(k) for k in ("samples", "bytes", "shards")})
            if size
            else None,
            metadata=_decode_metadata(value.get("metadata"), where),
            created_at=value["createdAt"],
        )

    def same_content(self, other: "DatasetRecord") -> bool:
        """True when both describe the same dataset (everything but ``createdAt``)."""
        return self.content() == other.content()


def _decode_metadata(raw: Any, where: str) -> dict[str, Any] | None:
    """Entry metadata: a JSON object, or (older writers) msgpack bytes as ``{"$bytes": b64}``."""
    if raw is None:
        return None
    if set(raw) == {"$bytes"}:
        import msgpack

        try:
            data = base64.b64decode(raw["$bytes"] + "=" * (-len(raw["$bytes"]) % 4), validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise _fail("$bytes is not base64", "$.metadata", where) from None
        if len(data) > MAX_METADATA_BYTES:
            raise _fail(f"more than {MAX_METADATA_BYTES} bytes of metadata", "$.metadata", where)
        try:
            decoded = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except Exception as exc:
            raise _fail(f"metadata bytes are not msgpack ({exc})", "$.metadata", where) from None
        if not isinstance(decoded, dict):
            raise _fail("metadata bytes do not hold a map", "$.metadata", where)
        return decoded
    import json

    if len(json.dumps(raw)) > MAX_METADATA_BYTES:
        raise _fail(f"more than {MAX_METADATA_BYTES} bytes of metadata", "$.metadata", where)
    return dict(raw)


# ---------------------------------------------------------------------------------- lens
@dataclass(frozen=True)
class CodeReference:
    """Where a function's code lives. Only a reference: atdata never fetches or runs it."""

    repository: str
    commit: str
    path: str
    branch: str | None = None
    language: str | None = "python"

    def to_dict(self) -> dict[str, str]:
        out = {"repository": self.repository, "commit": self.commit, "path": self.path}
        _opt(out, "branch", self.branch)
        _opt(out, "language", self.language)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str, where: str | None) -> "CodeReference":
        repository = data["repository"]
        scheme = urlsplit(repository).scheme
        if scheme not in ("https", "http", "at") or re.search(r"[\s\x00-\x1f\x7f\\]", repository):
            raise _fail(
                f"{repository!r:.120} is not an https:// or at:// repository",
                f"{path}.repository",
                where,
            )
        if scheme != "at":
            _check_http_url(repository, f"{path}.repository", where)
        commit = data["commit"]
        if _COMMIT.match(commit) is None:
            raise _fail(f"{commit!r:.60} is not a commit hash", f"{path}.commit", where)
        code_path = _check_relative_path(data["path"], f"{path}.path", where, "code path")
        language = data.get("language")
        if language is not None and _LANGUAGE.match(language) is None:
            raise _fail(f"{language!r:.60} is not a language name", f"{path}.language", where)
        branch = data.get("branch")
        return cls(repository, commit, code_path, branch, language)


@dataclass(frozen=True)
class LensRecord:
    """A ``science.alt.dataset.lens`` record: two schemas and references to the lens's code."""

    name: str
    source_schema: str
    target_schema: str
    getter: CodeReference
    putter: CodeReference
    description: str | None = None
    source_schema_version: str | None = None
    target_schema_version: str | None = None
    metadata: Mapping[str, Any] | None = None
    created_at: str = field(default_factory=now)

    NSID: ClassVar[str] = LENS

    def content(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "$type": LENS,
            "name": self.name,
            "sourceSchema": self.source_schema,
            "targetSchema": self.target_schema,
            "getterCode": self.getter.to_dict(),
            "putterCode": self.putter.to_dict(),
        }
        _opt(out, "description", self.description)
        _opt(out, "sourceSchemaVersion", self.source_schema_version)
        _opt(out, "targetSchemaVersion", self.target_schema_version)
        if self.metadata is not None:
            out["metadata"] = dict(self.metadata)
        return out

    def to_record(self) -> dict[str, Any]:
        out = self.content()
        out["createdAt"] = self.created_at
        LensRecord.from_record(out, uri=f"lens {self.name!r}")
        return out

    @classmethod
    def from_record(cls, value: Any, *, uri: str | None = None) -> "LensRecord":
        where = uri or "lens record"
        validate_record(LENS, value, where=where)
        name = check_name(value["name"], "$.name", where)
        schemas = []
        for key in ("sourceSchema", "targetSchema"):
            ref = AtUri.parse(value[key])
            if ref.collection != SCHEMA or ref.rkey is None:
                raise _fail(f"{ref} is not a schema record URI", f"$.{key}", where)
            schemas.append(str(ref))
        getter = CodeReference.from_dict(value["getterCode"], "$.getterCode", where)
        putter = CodeReference.from_dict(value["putterCode"], "$.putterCode", where)
        legacy_language = value.get("language")
        if legacy_language is not None and getter.language is None:
            getter = replace(getter, language=legacy_language)
            putter = replace(putter, language=putter.language or legacy_language)
        return cls(
            name=name,
            source_schema=schemas[0],
            target_schema=schemas[1],
            getter=getter,
            putter=putter,
            description=value.get("description"),
            source_schema_version=value.get("sourceSchemaVersion"),
            target_schema_version=value.get("targetSchemaVersion"),
            metadata=value.get("metadata"),
            created_at=value["createdAt"],
        )


# --------------------------------------------------------------------------------- label
@dataclass(frozen=True)
class LabelRecord:
    """A ``science.alt.dataset.label`` record: ``name`` (and ``version``) -> an entry URI."""

    name: str
    dataset_uri: str
    version: str | None = None
    description: str | None = None
    created_at: str = field(default_factory=now)

    NSID: ClassVar[str] = LABEL

    def content(self) -> dict[str, Any]:
        out: dict[str, Any] = {"$type": LABEL, "name": self.name, "datasetUri": self.dataset_uri}
        _opt(out, "version", self.version)
        _opt(out, "description", self.description)
        return out

    def to_record(self) -> dict[str, Any]:
        out = self.content()
        out["createdAt"] = self.created_at
        LabelRecord.from_record(out, uri=f"label {self.name!r}")
        return out

    @classmethod
    def from_record(cls, value: Any, *, uri: str | None = None) -> "LabelRecord":
        where = uri or "label record"
        validate_record(LABEL, value, where=where)
        name = check_name(value["name"], "$.name", where)
        target = AtUri.parse(value["datasetUri"])
        if target.collection != ENTRY or target.rkey is None:
            raise _fail(f"{target} is not a dataset entry URI", "$.datasetUri", where)
        version = value.get("version")
        if version is not None:
            check_name(version, "$.version", where)
        return cls(
            name=name,
            dataset_uri=str(target),
            version=version,
            description=value.get("description"),
            created_at=value["createdAt"],
        )


# ------------------------------------------------------------------------------- helpers
def _fit(text: str | None, nsid: str, prop: str) -> str | None:
    """``text`` cut (at a character boundary) to the lexicon's maxLength for ``nsid``.``prop``."""
    if text is None:
        return None
    limit = lexicon(nsid)["defs"]["main"]["record"]["properties"][prop].get("maxLength")
    raw = text.encode("utf-8")
    if limit is None or len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", "ignore") + "..."


def record_class(nsid: str) -> Any:
    """The record class for a collection NSID."""
    return {c.NSID: c for c in (SchemaRecord, DatasetRecord, LensRecord, LabelRecord)}[nsid]


def blob_cids(storage: Storage) -> list[str]:
    return [b.blob.cid for b in storage.blobs] if isinstance(storage, BlobStorage) else []
