"""Typed ``science.alt.dataset`` records: schema, dataset entry, lens, label.

Each record class has ``to_record()`` (the JSON value to publish, checked against the lexicon
first) and ``from_record(value, uri=...)`` (checked against the lexicon, then against atdata's
rules for safe use). Both come from the field declarations (:mod:`atdata.atmosphere._fields`):
each field names its JSON key, its check and when it is left out. Reading never runs anything:
shard locations must be ``http(s)`` URLs or plain S3 keys (:mod:`atdata.atmosphere.storage`),
names must not look like paths, code references stay references, metadata is plain data, and
every string and list is bounded by the lexicon. A failure raises
:class:`~atdata.atmosphere.lexicon.RecordValidationError` (an ``AtmosphereError``) naming the
record URI and the JSON path.
"""

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from .._clock import utc_now
from ..errors import SchemaError
from ..net.ids import record_cid
from ..schema import Schema
from ._fields import JsonObject, Parse, fail, json_field, omit_empty
from ._jsonschema import JSON_SCHEMA_FORMAT, from_json_schema, to_json_schema
from .lexicon import NAMESPACE, lexicon, validate_record
from .storage import BlobStorage, Storage, check_http_url, check_relative_path, parse_storage
from .uri import AtUri

__all__ = [
    "ENTRY",
    "LABEL",
    "LENS",
    "SCHEMA",
    "CodeReference",
    "DatasetRecord",
    "DatasetSize",
    "LabelRecord",
    "LensRecord",
    "SchemaRecord",
    "blob_cids",
    "check_name",
    "now",
    "record_class",
]

SCHEMA = f"{NAMESPACE}.schema"
ENTRY = f"{NAMESPACE}.entry"
LENS = f"{NAMESPACE}.lens"
LABEL = f"{NAMESPACE}.label"
SCHEMA_RECORD_VERSION = 1
MAX_METADATA_BYTES = 100_000

_COMMIT = re.compile(r"^[0-9a-fA-F]{7,40}\Z")
_LANGUAGE = re.compile(r"^[a-z][a-z0-9+#-]{0,49}\Z")
_UNSAFE_NAME = re.compile(r"[\\:@\x00-\x1f\x7f]")
_R = TypeVar("_R", bound="_Record")


def now() -> str:
    """The current UTC time as ATProto records carry it: RFC 3339, milliseconds, ``Z``."""
    return utc_now("milliseconds")


# ------------------------------------------------------------------------------- checks
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
        raise fail(
            f"{value!r:.100} is not a usable name: '/'-separated parts, none empty, '.' or '..', "
            "and no '\\', ':', '@', control characters or surrounding spaces",
            path,
            where,
        )
    return value


def _record_uri(collection: str, noun: str) -> Parse:
    """A ``parse`` for an AT-URI that must name a record of ``collection`` (normalised)."""

    def parse(value: str, path: str, where: str | None) -> str:
        ref = AtUri.parse(value)
        if ref.collection != collection or ref.rkey is None:
            raise fail(f"{ref} is not a {noun} URI", path, where)
        return str(ref)

    return parse


def _code_repository(value: str, path: str, where: str | None) -> str:
    scheme = urlsplit(value).scheme
    if scheme not in ("https", "http", "at") or re.search(r"[\s\x00-\x1f\x7f\\]", value):
        raise fail(f"{value!r:.120} is not an https:// or at:// repository", path, where)
    if scheme != "at":
        check_http_url(value, path, where)
    return value


def _commit(value: str, path: str, where: str | None) -> str:
    if _COMMIT.match(value) is None:
        raise fail(f"{value!r:.60} is not a commit hash", path, where)
    return value


def _code_path(value: str, path: str, where: str | None) -> str:
    return check_relative_path(value, path, where, "code path")


def _language(value: str, path: str, where: str | None) -> str:
    if _LANGUAGE.match(value) is None:
        raise fail(f"{value!r:.60} is not a language name", path, where)
    return value


def _version_name(value: str, path: str, where: str | None) -> str:
    return check_name(value, path, where)


def _metadata(raw: Any, path: str, where: str | None) -> dict[str, Any] | None:
    """Entry metadata: a JSON object, or (older writers) msgpack bytes as ``{"$bytes": b64}``."""
    if set(raw) == {"$bytes"}:
        import msgpack

        try:
            data = base64.b64decode(raw["$bytes"] + "=" * (-len(raw["$bytes"]) % 4), validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise fail("$bytes is not base64", path, where) from None
        if len(data) > MAX_METADATA_BYTES:
            raise fail(f"more than {MAX_METADATA_BYTES} bytes of metadata", path, where)
        try:
            decoded = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except Exception as exc:
            raise fail(f"metadata bytes are not msgpack ({exc})", path, where) from None
        if not isinstance(decoded, dict):
            raise fail("metadata bytes do not hold a map", path, where)
        return decoded
    import json

    if len(json.dumps(raw)) > MAX_METADATA_BYTES:
        raise fail(f"more than {MAX_METADATA_BYTES} bytes of metadata", path, where)
    return dict(raw)


def _lineage(raw: Any, path: str, where: str | None) -> dict[str, Any] | None:
    """A derived entry's lineage: a JSON object of at most MAX_METADATA_BYTES (kept as data;
    :func:`atdata.atmosphere.publish.published_lineage` makes it from an index entry's)."""
    import json

    if len(json.dumps(raw)) > MAX_METADATA_BYTES:
        raise fail(f"more than {MAX_METADATA_BYTES} bytes of lineage", path, where)
    return dict(raw)


def _tags(value: list[str], path: str, where: str | None) -> tuple[str, ...]:
    return tuple(value)


def _as_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    return dict(value)


def _to_dict(value: JsonObject) -> dict[str, Any]:
    return value.to_dict()


# ------------------------------------------------------------------------------- records
class _Record(JsonObject):
    """A record: its ``$type`` is its NSID, and reading checks the lexicon before the fields."""

    NSID: ClassVar[str]
    #: how a record being written is named in errors (``str.format`` over its fields)
    WHAT: ClassVar[str]
    #: how a record being read is named in errors when no URI is given
    READING: ClassVar[str]

    def to_record(self) -> dict[str, Any]:
        """The record to publish; checked by reading it back (so atdata never writes what it
        would refuse to read)."""
        out = self.to_dict()
        type(self).from_record(out, uri=self.WHAT.format(**vars(self)))
        return out

    @classmethod
    def from_record(cls: type[_R], value: Any, *, uri: str | None = None) -> _R:
        """The record ``value`` (fetched from ``uri``), checked against its lexicon and
        atdata's rules; RecordValidationError naming the JSON path otherwise."""
        where = uri or cls.READING
        validate_record(cls.NSID, value, where=where)
        cls._check_layout(value, where)
        return cls._build(cls.parse_fields(value, "$", where), value, where)

    @classmethod
    def _check_layout(cls, value: Mapping[str, Any], where: str) -> None:
        """Record-wide checks before the fields are read (none by default)."""

    @classmethod
    def _build(cls: type[_R], fields: dict[str, Any], value: Mapping[str, Any], where: str) -> _R:
        return cls(**fields)


@dataclass(frozen=True)
class SchemaRecord(_Record):
    """A ``science.alt.dataset.schema`` record: a sample type published as JSON Schema."""

    name: str = json_field("name")
    version: str = json_field("version")
    json_schema: Mapping[str, Any] = json_field("schema", dump=_as_dict)
    description: str | None = json_field("description", default=None)
    metadata: Mapping[str, Any] | None = json_field("metadata", dump=_as_dict, default=None)
    created_at: str = json_field("createdAt", in_content=False, default_factory=now)
    schema_type: str = json_field("schemaType", omit=None, default="jsonSchema")

    NSID: ClassVar[str] = SCHEMA
    TYPE: ClassVar[str | None] = SCHEMA
    CONSTANTS: ClassVar[Mapping[str, Any]] = {"atdataSchemaVersion": SCHEMA_RECORD_VERSION}
    WHAT: ClassVar[str] = "schema {name}@{version}"
    READING: ClassVar[str] = "schema record"

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
            raise fail(f"the schema cannot be used: {exc}", exc.path, where) from None

    def record_key(self) -> str:
        """The CID (dag-cbor, sha2-256) of :meth:`content`; the key atdata publishes it under."""
        return record_cid(self.content())

    @classmethod
    def _check_layout(cls, value: Mapping[str, Any], where: str) -> None:
        if value["schemaType"] != "jsonSchema":
            raise fail(
                f"schemaType {value['schemaType']!r:.60} is not supported", "$.schemaType", where
            )
        body = value["schema"]
        if body.get("$type") != JSON_SCHEMA_FORMAT:
            raise fail(
                f"schema format {body.get('$type')!r:.80} is not supported", "$.schema.$type", where
            )
        layout = value.get("atdataSchemaVersion", 1)
        if layout > SCHEMA_RECORD_VERSION:
            raise fail(
                f"record layout version {layout} is newer than this atdata understands "
                f"({SCHEMA_RECORD_VERSION}); upgrade atdata",
                "$.atdataSchemaVersion",
                where,
            )

    @classmethod
    def _build(cls, fields: dict[str, Any], value: Mapping[str, Any], where: str) -> "SchemaRecord":
        record = cls(**fields)
        record.to_schema(where=where)  # reject unusable schemas when read, not when used
        return record


@dataclass(frozen=True)
class DatasetSize(JsonObject):
    samples: int | None = json_field("samples", default=None)
    bytes: int | None = json_field("bytes", default=None)
    shards: int | None = json_field("shards", default=None)


def _size(value: Mapping[str, Any], path: str, where: str | None) -> DatasetSize | None:
    return DatasetSize.from_dict(value, path, where) if value else None


@dataclass(frozen=True)
class DatasetRecord(_Record):
    """A ``science.alt.dataset.entry`` record: one immutable version of a dataset."""

    name: str = json_field("name", parse=check_name)
    schema_ref: str = json_field("schemaRef", parse=_record_uri(SCHEMA, "schema record"))
    storage: Storage = json_field("storage", parse=parse_storage, dump=_to_dict)
    description: str | None = json_field("description", default=None)
    tags: tuple[str, ...] = json_field("tags", parse=_tags, dump=list, omit=omit_empty, default=())
    license: str | None = json_field("license", default=None)
    size: DatasetSize | None = json_field("size", parse=_size, dump=_to_dict, default=None)
    metadata: Mapping[str, Any] | None = json_field(
        "metadata", parse=_metadata, dump=_as_dict, omit=omit_empty, default=None
    )
    #: a derived dataset's lineage (parents, transform, shard digests); see the lexicon
    lineage: Mapping[str, Any] | None = json_field(
        "lineage", parse=_lineage, dump=_as_dict, omit=omit_empty, default=None
    )
    created_at: str = json_field("createdAt", in_content=False, default_factory=now)

    NSID: ClassVar[str] = ENTRY
    TYPE: ClassVar[str | None] = ENTRY
    WHAT: ClassVar[str] = "dataset entry {name!r}"
    READING: ClassVar[str] = "entry record"

    def same_content(self, other: "DatasetRecord") -> bool:
        """True when both describe the same dataset (everything but ``createdAt``)."""
        return self.content() == other.content()


@dataclass(frozen=True)
class CodeReference(JsonObject):
    """Where a function's code lives. Only a reference: atdata never fetches or runs it."""

    repository: str = json_field("repository", parse=_code_repository)
    commit: str = json_field("commit", parse=_commit)
    path: str = json_field("path", parse=_code_path)
    branch: str | None = json_field("branch", default=None)
    language: str | None = json_field("language", parse=_language, absent=None, default="python")


@dataclass(frozen=True)
class LensRecord(_Record):
    """A ``science.alt.dataset.lens`` record: two schemas and references to the lens's code."""

    name: str = json_field("name", parse=check_name)
    source_schema: str = json_field("sourceSchema", parse=_record_uri(SCHEMA, "schema record"))
    target_schema: str = json_field("targetSchema", parse=_record_uri(SCHEMA, "schema record"))
    getter: CodeReference = json_field("getterCode", parse=CodeReference.parser(), dump=_to_dict)
    putter: CodeReference = json_field("putterCode", parse=CodeReference.parser(), dump=_to_dict)
    description: str | None = json_field("description", default=None)
    source_schema_version: str | None = json_field("sourceSchemaVersion", default=None)
    target_schema_version: str | None = json_field("targetSchemaVersion", default=None)
    metadata: Mapping[str, Any] | None = json_field("metadata", dump=_as_dict, default=None)
    created_at: str = json_field("createdAt", in_content=False, default_factory=now)

    NSID: ClassVar[str] = LENS
    TYPE: ClassVar[str | None] = LENS
    WHAT: ClassVar[str] = "lens {name!r}"
    READING: ClassVar[str] = "lens record"

    @classmethod
    def _build(cls, fields: dict[str, Any], value: Mapping[str, Any], where: str) -> "LensRecord":
        legacy_language = value.get("language")  # older records: one language for both
        getter, putter = fields["getter"], fields["putter"]
        if legacy_language is not None and getter.language is None:
            fields["getter"] = replace(getter, language=legacy_language)
            fields["putter"] = replace(putter, language=putter.language or legacy_language)
        return cls(**fields)


@dataclass(frozen=True)
class LabelRecord(_Record):
    """A ``science.alt.dataset.label`` record: ``name`` (and ``version``) -> an entry URI."""

    name: str = json_field("name", parse=check_name)
    dataset_uri: str = json_field("datasetUri", parse=_record_uri(ENTRY, "dataset entry"))
    version: str | None = json_field("version", parse=_version_name, default=None)
    description: str | None = json_field("description", default=None)
    created_at: str = json_field("createdAt", in_content=False, default_factory=now)

    NSID: ClassVar[str] = LABEL
    TYPE: ClassVar[str | None] = LABEL
    WHAT: ClassVar[str] = "label {name!r}"
    READING: ClassVar[str] = "label record"


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
