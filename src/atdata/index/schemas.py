"""Versioned schema records and the rule that decides when a version changes.

Publishing a schema whose fields equal those of a stored version (of the same name) returns that
version: nothing is written. Otherwise a new version is created from the newest one:

* **patch** (``1.2.3`` -> ``1.2.4``): the same fields, only in another order;
* **minor** (``1.2.3`` -> ``1.3.0``): every existing field unchanged, and every added field
  optional (it has a default, so data written under the old version still decodes);
* **major** (``1.2.3`` -> ``2.0.0``): anything else: a field removed or renamed, its type,
  dtype, shape or requiredness changed, or a required field added.

Descriptions (docstrings) never cause a bump. The first version of a name is ``1.0.0``.
"""

from typing import Any, Literal, Protocol

from .._clock import utc_now
from ..errors import ConflictError
from ..schema import Field, Schema
from .cid import schema_cid
from .entries import SchemaEntry
from .providers.base import Record, Transaction
from .refs import bump_semver, name_prefix, parse_semver, schema_key

__all__ = [
    "Change",
    "Scanner",
    "classify_change",
    "add_schema_tx",
    "schema_versions_tx",
]

Change = Literal["none", "patch", "minor", "major"]


def classify_change(old: Schema, new: Schema) -> Change:
    """How ``new`` differs from ``old``, by the rule in this module's docstring.

    >>> from atdata.schema import FieldType
    >>> a = Schema("P", (Field("x", FieldType("int")),))
    >>> b = Schema("P", a.fields + (Field("y", FieldType("int", optional=True), required=False),))
    >>> classify_change(a, b), classify_change(b, a)
    ('minor', 'major')
    """
    old_keys = [_field_key(f) for f in old.fields]
    new_keys = [_field_key(f) for f in new.fields]
    if old_keys == new_keys:
        return "none"
    old_by = dict(zip((f.name for f in old.fields), old_keys, strict=True))
    new_by = dict(zip((f.name for f in new.fields), new_keys, strict=True))
    if old_by == new_by:
        return "patch"
    unchanged = all(new_by.get(name) == key for name, key in old_by.items())
    added_optional = all(not f.required for f in new.fields if f.name not in old_by)
    return "minor" if unchanged and added_optional else "major"


class Scanner(Protocol):
    """A Transaction, or a Provider for reads outside one."""

    def scan(
        self,
        kind: str,
        prefix: str = "",
        *,
        start_after: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[str, Record]]: ...


def schema_versions_tx(tx: Scanner, name: str, repo: str) -> list[SchemaEntry]:
    """Every stored version of schema ``name``, oldest first (by semver)."""
    records = [
        SchemaEntry.from_record(r, repo=repo) for _, r in tx.scan("schema", name_prefix(name))
    ]
    return sorted(records, key=lambda r: parse_semver(r.version))


def add_schema_tx(
    tx: Transaction, schema: Schema, *, repo: str, version: str | None = None
) -> SchemaEntry:
    """Store ``schema`` (or find the stored version with the same fields) inside ``tx``.

    With an explicit ``version``, that version is created, or returned if it already holds the
    same fields; ConflictError if it holds different ones.
    """
    existing = schema_versions_tx(tx, schema.name, repo)
    if version is not None:
        parse_semver(version)
        for rec in existing:
            if rec.version == version:
                if classify_change(rec.schema, schema) != "none":
                    raise ConflictError(
                        f"schema {rec.ref} already exists with different fields; add it without "
                        "version= to get the next version"
                    )
                return rec
        new_version = version
    else:
        for rec in reversed(existing):
            if classify_change(rec.schema, schema) == "none":
                return rec
        if existing:
            latest = existing[-1]
            change = classify_change(latest.schema, schema)
            assert change != "none"
            new_version = bump_semver(latest.version, change)
        else:
            new_version = "1.0.0"
    stored = schema.with_version(new_version)
    record = SchemaEntry(
        name=schema.name,
        version=new_version,
        cid=schema_cid(stored.to_dict()),
        schema=stored,
        created_at=utc_now(),
        repo=repo,
    )
    tx.create("schema", schema_key(schema.name, new_version), record.to_record())
    return record


def _field_key(f: Field) -> Any:
    """A comparable form of a field: name, type and requiredness, ignoring descriptions."""
    return (f.name, _strip(f.type.to_dict()), f.required)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(
            sorted((k, _strip(v)) for k, v in value.items() if k not in ("description", "version"))
        )
    if isinstance(value, list):
        return tuple(_strip(v) for v in value)
    return value
