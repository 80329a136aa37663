"""The entries of an index: datasets, schemas, labels and lenses, as typed values.

"Entry" is what an index holds (a row in its provider); "record" in atdata means an ATProto
record of :mod:`atdata.atmosphere`. Each class converts to and from the plain dict a provider stores (``to_record`` /
``from_record``); providers never see these classes. ``from_record`` raises AtdataIndexError
naming the record when a stored dict is malformed.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import AtdataIndexError
from ..schema import Schema
from ..shards.info import ShardInfo
from .refs import format_ref

__all__ = ["DatasetEntry", "LabelEntry", "LensEntry", "SchemaEntry", "resolve_code_ref"]


@dataclass(frozen=True)
class DatasetEntry:
    """One immutable version of a dataset: its shards with checksums, schema and description."""

    name: str
    version: int
    cid: str
    schema_ref: str | None
    shards: tuple[ShardInfo, ...]
    count: int
    created_at: str
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)
    description: str | None = None
    tags: tuple[str, ...] = ()
    license: str | None = None
    #: True when the repository's store holds the shards (they are deleted with the entry).
    stored: bool = False
    repo: str = "local"
    #: a derived version's lineage record (parents, transform, shard provenance, failures;
    #: :class:`atdata.derive.lineage.Lineage` reads it); None for versions not derived
    lineage: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)

    @property
    def urls(self) -> list[str]:
        """The shard URLs, in order."""
        return [s.url for s in self.shards]

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def uri(self) -> str:
        """``atdata://<repo>/dataset/<name>@<version>``."""
        return format_ref(self.repo, "dataset", self.name, self.version)

    @property
    def size(self) -> int:
        """Total bytes of all shards."""
        return sum(s.size for s in self.shards)

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "cid": self.cid,
            "schema_ref": self.schema_ref,
            "shards": [s.to_dict() for s in self.shards],
            "count": self.count,
            "created_at": self.created_at,
            "metadata": dict(self.metadata),
            "description": self.description,
            "tags": list(self.tags),
            "license": self.license,
            "stored": self.stored,
            **({"lineage": dict(self.lineage)} if self.lineage else {}),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, repo: str) -> "DatasetEntry":
        return _from_record(cls, "dataset", record, repo, _DATASET_FIELDS)


@dataclass(frozen=True)
class SchemaEntry:
    """A stored, versioned schema: ``atdata://<repo>/schema/<Name>@<version>``."""

    name: str
    version: str
    cid: str
    schema: Schema
    created_at: str
    repo: str = "local"

    @property
    def ref(self) -> str:
        return format_ref(self.repo, "schema", self.name, self.version)

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "cid": self.cid,
            "schema": self.schema.to_dict(),
            "created_at": self.created_at,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, repo: str) -> "SchemaEntry":
        return _from_record(cls, "schema", record, repo, _SCHEMA_FIELDS)


@dataclass(frozen=True)
class LabelEntry:
    """A label naming one dataset version (``production`` -> ``mnist@3``)."""

    name: str
    dataset: str
    version: int
    created_at: str
    description: str | None = None
    repo: str = "local"

    @property
    def target(self) -> str:
        return f"{self.dataset}@{self.version}"

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dataset": self.dataset,
            "version": self.version,
            "created_at": self.created_at,
            "description": self.description,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, repo: str) -> "LabelEntry":
        return _from_record(cls, "label", record, repo, _LABEL_FIELDS)


@dataclass(frozen=True)
class LensEntry:
    """A lens recorded by reference: schemas it connects and where its installed code lives.

    ``getter`` and ``putter`` are ``"module:qualname"`` strings naming installed code; the
    index never imports them by itself (see :meth:`resolve_getter`).
    """

    name: str
    source_schema: str
    target_schema: str
    getter: str
    putter: str | None
    created_at: str
    description: str | None = None
    repo: str = "local"

    def resolve_getter(self, *, allow_import: bool = False) -> Any:
        """The object named by ``getter``; see :func:`resolve_code_ref`."""
        return resolve_code_ref(self.getter, allow_import=allow_import)

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source_schema": self.source_schema,
            "target_schema": self.target_schema,
            "getter": self.getter,
            "putter": self.putter,
            "created_at": self.created_at,
            "description": self.description,
        }

    def same_code(self, other: "LensEntry") -> bool:
        """True when both records connect the same schemas with the same code."""
        return (self.source_schema, self.target_schema, self.getter, self.putter) == (
            other.source_schema,
            other.target_schema,
            other.getter,
            other.putter,
        )

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, repo: str) -> "LensEntry":
        return _from_record(cls, "lens", record, repo, _LENS_FIELDS)


def resolve_code_ref(ref: str, *, allow_import: bool = False) -> Any:
    """The object at ``"module:qualname"``.

    By default only modules already imported are consulted, so reading a record never runs
    code; ``allow_import=True`` imports the module (only for records you trust).
    """
    import importlib
    import sys

    module_name, sep, qualname = ref.partition(":")
    if not sep or not module_name or not qualname:
        raise AtdataIndexError(f"code reference {ref!r} is not of the form 'module:qualname'")
    module = sys.modules.get(module_name)
    if module is None:
        if not allow_import:
            raise AtdataIndexError(
                f"module {module_name!r} of {ref!r} is not imported; import it yourself, or pass "
                "allow_import=True if you trust this record"
            )
        module = importlib.import_module(module_name)
    obj: Any = module
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AtdataIndexError(f"{ref!r}: {module_name} has no {qualname}") from None
    return obj


def _str(record: Mapping[str, Any], key: str) -> str:
    value = record[key]
    if not isinstance(value, str):
        raise TypeError(f"{key!r} must be a string, got {type(value).__name__}")
    return value


def _opt_str(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{key!r} must be a string or null, got {type(value).__name__}")
    return value


def _int(record: Mapping[str, Any], key: str) -> int:
    value = record[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{key!r} must be an integer, got {type(value).__name__}")
    return value


def _shards(record: Mapping[str, Any], key: str) -> tuple[ShardInfo, ...]:
    return tuple(ShardInfo.from_dict(s) for s in record[key])


def _metadata(record: Mapping[str, Any], key: str) -> dict[str, Any]:
    return dict(record.get(key) or {})


def _tags(record: Mapping[str, Any], key: str) -> tuple[str, ...]:
    return tuple(str(t) for t in record.get(key) or ())


def _flag(record: Mapping[str, Any], key: str) -> bool:
    return bool(record.get(key, False))


def _lineage(record: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{key!r} must be a mapping or null, got {type(value).__name__}")
    return dict(value)


def _schema(record: Mapping[str, Any], key: str) -> Schema:
    return Schema.from_dict(record[key])


_Read = Callable[[Mapping[str, Any], str], Any]
_E = TypeVar("_E")

# Each entry's fields, in the order they are read (the first bad one is the one reported).
_DATASET_FIELDS: dict[str, _Read] = {
    "name": _str,
    "version": _int,
    "cid": _str,
    "schema_ref": _opt_str,
    "shards": _shards,
    "count": _int,
    "created_at": _str,
    "metadata": _metadata,
    "description": _opt_str,
    "tags": _tags,
    "license": _opt_str,
    "stored": _flag,
    "lineage": _lineage,
}
_SCHEMA_FIELDS: dict[str, _Read] = {
    "schema": _schema,
    "name": _str,
    "version": _str,
    "cid": _str,
    "created_at": _str,
}
_LABEL_FIELDS: dict[str, _Read] = {
    "name": _str,
    "dataset": _str,
    "version": _int,
    "created_at": _str,
    "description": _opt_str,
}
_LENS_FIELDS: dict[str, _Read] = {
    "name": _str,
    "source_schema": _str,
    "target_schema": _str,
    "getter": _str,
    "putter": _opt_str,
    "created_at": _str,
    "description": _opt_str,
}


def _from_record(
    make: Callable[..., _E],
    kind: str,
    record: Mapping[str, Any],
    repo: str,
    fields: Mapping[str, _Read],
) -> _E:
    """``make(**fields read from record, repo=repo)``; AtdataIndexError naming the record when
    a field is missing or of the wrong type."""
    try:
        return make(**{key: read(record, key) for key, read in fields.items()}, repo=repo)
    except (KeyError, TypeError, ValueError) as exc:
        raise _malformed(kind, record, exc) from exc


def _malformed(kind: str, record: Mapping[str, Any], exc: Exception) -> AtdataIndexError:
    name = record.get("name") if isinstance(record, Mapping) else None
    return AtdataIndexError(f"malformed {kind} record {name!r}: {exc}")
