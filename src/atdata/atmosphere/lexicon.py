"""Check records against the ``science.alt.dataset`` lexicon JSON shipped in ``atdata/lexicons``.

The lexicon documents are the single source of truth for record shapes: required fields, types,
string limits (UTF-8 bytes, as the AT Protocol counts them), integer bounds, array lengths, blob
sizes, unions and string formats (``at-uri``, ``uri``, ``datetime``, ``did``, ``cid``, ...).
Records are checked before they are sent and after they are received; a failure raises
:class:`RecordValidationError` naming the record, the JSON path and the rule broken.

Objects are open, as the protocol requires: keys a lexicon does not name are allowed (readers
ignore them). ``accept`` on blobs is not enforced on read, because a PDS records whatever MIME
type the uploader declared.
"""

import base64
import binascii
import functools
import json
import re
from collections.abc import Mapping
from datetime import datetime
from importlib import resources
from typing import Any

from ..errors import AtmosphereError
from .uri import AtUri, is_cid, is_did, is_handle, is_nsid, is_record_key

__all__ = [
    "NAMESPACE",
    "RecordValidationError",
    "lexicon",
    "lexicon_ids",
    "validate_object",
    "validate_record",
]

NAMESPACE = "science.alt.dataset"
MAX_DEPTH = 48

_DATETIME = re.compile(
    r"^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](\.[0-9]{1,20})?"
    r"(Z|[+-][0-2][0-9]:[0-5][0-9])\Z"
)
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:[^\s]+\Z")
_LANGUAGE = re.compile(r"^(i|[a-z]{2,3})(-[a-zA-Z0-9]+)*\Z")
_TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class RecordValidationError(AtmosphereError):
    """A record does not follow its lexicon (or atdata's stricter rules for safe use)."""

    def __init__(self, message: str, *, path: str = "$", where: str | None = None) -> None:
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{path}: {message}")
        self.path = path
        self.where = where


# ------------------------------------------------------------------------------ documents
def lexicon_ids() -> list[str]:
    """NSIDs of the lexicon documents shipped with atdata."""
    root = resources.files("atdata.lexicons").joinpath(*NAMESPACE.split("."))
    return sorted(f"{NAMESPACE}.{p.name[:-5]}" for p in root.iterdir() if p.name.endswith(".json"))


@functools.cache
def lexicon(nsid: str) -> dict[str, Any]:
    """The parsed lexicon document for ``nsid`` (KeyError when atdata ships none)."""
    if not is_nsid(nsid) or not nsid.startswith(NAMESPACE + "."):
        raise KeyError(nsid)
    *dirs, name = nsid.split(".")
    path = resources.files("atdata.lexicons").joinpath(*dirs, f"{name}.json")
    if not path.is_file():
        raise KeyError(nsid)
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("id") != nsid or doc.get("lexicon") != 1:
        raise KeyError(nsid)
    return doc


def _split_ref(ref: str, context: str) -> tuple[str, str]:
    """``#def`` / ``nsid`` / ``nsid#def`` -> (nsid, def name), relative to ``context``."""
    if ref.startswith("#"):
        return context, ref[1:]
    nsid, _, name = ref.partition("#")
    return nsid, name or "main"


def _definition(nsid: str, name: str) -> dict[str, Any]:
    try:
        defs: dict[str, Any] = lexicon(nsid)["defs"]
        return dict(defs[name])
    except KeyError:
        raise KeyError(f"{nsid}#{name}") from None


# ------------------------------------------------------------------------------ checking
def validate_record(nsid: str, value: object, *, where: str | None = None) -> None:
    """Check that ``value`` is a valid ``nsid`` record (``$type`` included)."""
    main = _definition(nsid, "main")
    if main.get("type") != "record":
        raise KeyError(f"{nsid} is not a record lexicon")
    if not isinstance(value, Mapping):
        raise RecordValidationError(
            f"a {nsid} record must be an object, got {type(value).__name__}", where=where
        )
    if value.get("$type") != nsid:
        raise RecordValidationError(
            f"$type is {_short(value.get('$type'))}, expected {nsid!r}", path="$.$type", where=where
        )
    _Checker(where).check(main["record"], value, "$", nsid, 0)


def validate_object(ref: str, value: object, *, where: str | None = None) -> None:
    """Check ``value`` against a non-record definition such as ``science.alt.dataset.storageHttp``."""
    nsid, name = _split_ref(ref, NAMESPACE)
    _Checker(where).check(_definition(nsid, name), value, "$", nsid, 0)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Checker:
    def __init__(self, where: str | None) -> None:
        self.where = where

    def fail(self, path: str, message: str) -> RecordValidationError:
        return RecordValidationError(message, path=path, where=self.where)

    def check(self, schema: Mapping[str, Any], value: Any, path: str, ctx: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise self.fail(path, f"nested more than {MAX_DEPTH} levels deep")
        kind = schema.get("type")
        method = getattr(self, f"_check_{str(kind).replace('-', '_')}", None)
        if method is None:
            raise KeyError(f"lexicon type {kind!r} is not supported (in {ctx})")
        method(schema, value, path, ctx, depth)

    # -- containers -----------------------------------------------------------------------
    def _check_object(
        self, schema: Mapping[str, Any], value: Any, path: str, ctx: str, depth: int
    ) -> None:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected an object, got {type(value).__name__}")
        nullable = set(schema.get("nullable", ()))
        for key in schema.get("required", ()):
            if key not in value or (value[key] is None and key not in nullable):
                raise self.fail(f"{path}.{key}", "required field is missing")
        for key, sub in schema.get("properties", {}).items():
            if key not in value:
                continue
            item = value[key]
            if item is None:
                if key in nullable:
                    continue
                raise self.fail(f"{path}.{key}", "must not be null")
            self.check(sub, item, f"{path}.{key}", ctx, depth + 1)

    def _check_array(
        self, schema: Mapping[str, Any], value: Any, path: str, ctx: str, depth: int
    ) -> None:
        if not isinstance(value, list):
            raise self.fail(path, f"expected an array, got {type(value).__name__}")
        self._length(schema, len(value), path, "items")
        items = schema.get("items")
        if items is not None:
            for i, item in enumerate(value):
                self.check(items, item, f"{path}[{i}]", ctx, depth + 1)

    def _check_ref(
        self, schema: Mapping[str, Any], value: Any, path: str, ctx: str, depth: int
    ) -> None:
        nsid, name = _split_ref(schema["ref"], ctx)
        self.check(_definition(nsid, name), value, path, nsid, depth + 1)

    def _check_union(
        self, schema: Mapping[str, Any], value: Any, path: str, ctx: str, depth: int
    ) -> None:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected an object with $type, got {type(value).__name__}")
        type_ = value.get("$type")
        if not isinstance(type_, str):
            raise self.fail(f"{path}.$type", "a union member needs a $type")
        want_nsid, want_name = _split_ref(type_, ctx)
        for ref in schema.get("refs", ()):
            nsid, name = _split_ref(ref, ctx)
            if (nsid, name) == (want_nsid, want_name):
                self.check(_definition(nsid, name), value, path, nsid, depth + 1)
                return
        if schema.get("closed", False) or not schema.get("refs"):
            raise self.fail(f"{path}.$type", f"{_short(type_)} is not one of {schema['refs']}")
        if not is_nsid(want_nsid):
            raise self.fail(f"{path}.$type", f"{_short(type_)} is not an NSID reference")

    # -- scalars --------------------------------------------------------------------------
    def _check_string(
        self, schema: Mapping[str, Any], value: Any, path: str, ctx: str, depth: int
    ) -> None:
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {type(value).__name__}")
        if "const" in schema and value != schema["const"]:
            raise self.fail(path, f"must be {schema['const']!r}, got {_short(value)}")
        if "enum" in schema and value not in schema["enum"]:
            raise self.fail(path, f"must be one of {schema['enum']}, got {_short(value)}")
        self._length(schema, len(value.encode("utf-8", "surrogatepass")), path, "bytes")
        if "maxGraphemes" in schema and len(value) > schema["maxGraphemes"]:
            raise self.fail(path, f"longer than {schema['maxGraphemes']} characters")
        if _CONTROL.search(value):
            raise self.fail(path, "contains control characters")
        fmt = schema.get("format")
        if fmt is not None and not _FORMATS[fmt](value):
            raise self.fail(path, f"{_short(value)} is not a valid {fmt}")

    def _check_integer(
        self, schema: Mapping[str, Any], value: Any, path: str, ctx: str, depth: int
    ) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(path, f"expected an integer, got {type(value).__name__}")
        if "const" in schema and value != schema["const"]:
            raise self.fail(path, f"must be {schema['const']}")
        if "enum" in schema and value not in schema["enum"]:
            raise self.fail(path, f"must be one of {schema['enum']}")
        if "minimum" in schema and value < schema["minimum"]:
            raise self.fail(path, f"must be >= {schema['minimum']}, got {value}")
        if "maximum" in schema and value > schema["maximum"]:
            raise self.fail(path, f"must be <= {schema['maximum']}, got {value}")
        if not -(2**53) <= value <= 2**53:
            raise self.fail(path, "integer out of the range records can carry")

    def _check_boolean(
        self, schema: Mapping[str, Any], value: Any, path: str, ctx: str, depth: int
    ) -> None:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected a boolean, got {type(value).__name__}")

    def _check_unknown(
        self, schema: Mapping[str, Any], value: Any, path: str, ctx: str, depth: int
    ) -> None:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected an object, got {type(value).__name__}")

    def _check_bytes(
        self, schema: Mapping[str, Any], value: Any, path: str, ctx: str, depth: int
    ) -> None:
        raw = value.get("$bytes") if isinstance(value, Mapping) else None
        if not isinstance(raw, str):
            raise self.fail(path, 'expected bytes ({"$bytes": "<base64>"})')
        try:
            data = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise self.fail(path, "$bytes is not base64") from None
        self._length(schema, len(data), path, "bytes")

    def _check_cid_link(
        self, schema: Mapping[str, Any], value: Any, path: str, ctx: str, depth: int
    ) -> None:
        link = value.get("$link") if isinstance(value, Mapping) else None
        if not is_cid(link):
            raise self.fail(path, 'expected a CID link ({"$link": "<cid>"})')

    def _check_blob(
        self, schema: Mapping[str, Any], value: Any, path: str, ctx: str, depth: int
    ) -> None:
        if not isinstance(value, Mapping) or value.get("$type") != "blob":
            raise self.fail(path, 'expected a blob ({"$type": "blob", "ref": ..., ...})')
        ref = value.get("ref")
        if not isinstance(ref, Mapping) or not is_cid(ref.get("$link")):
            raise self.fail(f"{path}.ref", 'expected {"$link": "<cid>"}')
        mime = value.get("mimeType")
        if not isinstance(mime, str) or not 0 < len(mime) <= 255 or _CONTROL.search(mime):
            raise self.fail(f"{path}.mimeType", "expected a MIME type")
        size = value.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise self.fail(f"{path}.size", "expected a non-negative integer")
        if "maxSize" in schema and size > schema["maxSize"]:
            raise self.fail(f"{path}.size", f"{size} bytes is over the {schema['maxSize']} limit")

    def _check_token(
        self, schema: Mapping[str, Any], value: Any, path: str, ctx: str, depth: int
    ) -> None:
        raise self.fail(path, "a token is not a value")

    def _length(self, schema: Mapping[str, Any], n: int, path: str, unit: str) -> None:
        if "maxLength" in schema and n > schema["maxLength"]:
            raise self.fail(path, f"{n} {unit} is over the limit of {schema['maxLength']}")
        if "minLength" in schema and n < schema["minLength"]:
            raise self.fail(path, f"{n} {unit} is under the minimum of {schema['minLength']}")


def _is_datetime(value: str) -> bool:
    if _DATETIME.match(value) is None:
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_at_uri(value: str) -> bool:
    try:
        AtUri.parse(value)
    except AtmosphereError:
        return False
    return True


_FORMATS: dict[str, Any] = {
    "datetime": _is_datetime,
    "at-uri": _is_at_uri,
    "uri": lambda v: len(v) <= 8192 and _URI.match(v) is not None,
    "did": is_did,
    "handle": is_handle,
    "at-identifier": lambda v: is_did(v) or is_handle(v),
    "nsid": is_nsid,
    "cid": is_cid,
    "record-key": is_record_key,
    "tid": lambda v: _TID.match(v) is not None,
    "language": lambda v: _LANGUAGE.match(v) is not None,
}
