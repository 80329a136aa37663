"""Reading shards for the CLI: per-shard summaries, raw samples, inferred schemas, display forms.

Everything here reads as little as it can: a shard's count, size and sha256 come from its
offset-index sidecar (the tar is scanned only when there is none), a schema is inferred from the
first sample alone, and a preview stops after ``limit`` samples.
"""

import os
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..codec import decode_array, unpack_map
from ..errors import SchemaError
from ..members import decode_member
from ..schema import Field, FieldType, Schema
from ..shards.reader import iter_members, load_offsets, scan_offsets
from ..shards.tar import split_name
from ..shards.urls import expand_urls
from ..sources import open_source
from ._media import ImageInfo, image_info

if TYPE_CHECKING:
    from ..sources.base import ShardSource

__all__ = [
    "INFERRED_NAME",
    "ShardSummary",
    "MemberFields",
    "decode_fields",
    "display_value",
    "expand_shards",
    "infer_schema",
    "iter_raw_samples",
    "json_value",
    "summarize_shard",
]

#: The name given to schemas inferred from a sample (they have no declared name).
INFERRED_NAME = "inferred"
_SAMPLE_SUFFIX = "msgpack"
_TEXT_WIDTH = 48


@dataclass(frozen=True)
class ShardSummary:
    """One shard as the CLI reports it. ``indexed`` is False when the tar had to be scanned
    because it has no ``.idx`` sidecar (then ``sha256`` is unknown)."""

    url: str
    count: int
    size: int
    sha256: str | None
    indexed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "count": self.count,
            "size": self.size,
            "sha256": self.sha256,
            "offset_index": self.indexed,
        }


def expand_shards(text: str) -> list[str]:
    """The shard URLs a path, directory, glob, brace pattern or URL names (``.idx`` sidecars
    matched by a glob are dropped)."""
    return [u for u in expand_urls(text) if not u.endswith(".idx")]


def summarize_shard(url: str) -> ShardSummary:
    """Count, size and sha256 of one shard from its sidecar; a full scan only without one."""
    source = open_source(url)
    index = load_offsets(source)
    indexed = index is not None
    if index is None:
        index = scan_offsets(source)
    path = source.local_path()
    size = os.path.getsize(path) if path is not None else index.shard_size
    return ShardSummary(url, len(index), size, index.sha256, indexed)


class MemberFields(dict[str, Any]):
    """The fields of a sample stored in member layout (no ``.msgpack`` member): one per
    member, named by its extension."""


def iter_raw_samples(
    shards: "Iterable[str | ShardSource]",
) -> Generator[tuple[str, dict[str, Any]], None, None]:
    """``(key, fields)`` of every sample of ``shards`` (URLs or opened sources), in order: the
    msgpack map's fields, plus any other members of the same key under their suffix, decoded by
    it (text, class labels, JSON, ``.npy``; ``bytes`` otherwise or when they do not decode). A
    sample with no ``.msgpack`` member comes as :class:`MemberFields`."""
    for url in shards:
        key: str | None = None
        parts: dict[str, Any] = MemberFields()
        for member, body in iter_members(url):
            mkey, suffix = split_name(member.name)
            if mkey != key:
                if key is not None:
                    yield key, parts
                key, parts = mkey, MemberFields()
            if suffix == _SAMPLE_SUFFIX:
                parts = dict(parts)
                parts.update(unpack_map(body, views=False))
            else:
                try:
                    parts[suffix] = decode_member(suffix, body)
                except SchemaError:
                    parts[suffix] = bytes(body)
        if key is not None:
            yield key, parts


def _as_array(value: bytes) -> np.ndarray[Any, Any] | None:
    try:
        return decode_array(value)
    except (SchemaError, ValueError, TypeError):
        return None


def decode_fields(fields: dict[str, Any], schema: Schema | None) -> dict[str, Any]:
    """Arrays decoded: the fields the schema declares as arrays, or (without a schema) the
    ``bytes`` values that parse as a stored array."""
    declared: dict[str, FieldType] = {}
    if schema is not None:
        declared = {f.name: f.type for f in schema.fields}
        if schema.layout == "members" and isinstance(fields, MemberFields):
            fields = _by_field(fields, schema)
    out: dict[str, Any] = {}
    for name, value in fields.items():
        ftype = declared.get(name)
        wanted = ftype.kind == "array" if ftype is not None else schema is None
        array = _as_array(value) if wanted and isinstance(value, bytes) else None
        if array is None and (ftype is None or ftype.kind in ("image", "bytes", "any")):
            info = image_info(value)
            if info is not None:
                out[name] = info
                continue
        out[name] = array if array is not None else value
    return out


def _by_field(members: MemberFields, schema: Schema) -> dict[str, Any]:
    """A member-layout sample's members under the schema's field names (first extension
    present; None when none is)."""
    out: dict[str, Any] = {}
    for f in schema.fields:
        found = next((e for e in f.members or (f.name,) if e in members), None)
        out[f.name] = members[found] if found is not None else None
    return out


def infer_schema(fields: dict[str, Any]) -> Schema:
    """The schema one sample's fields suggest (dtype and exact shape from its arrays)."""
    decoded = decode_fields(fields, None)
    members = isinstance(fields, MemberFields)
    return Schema(
        name=INFERRED_NAME,
        fields=tuple(
            Field(name, _infer_type(value), members=(name,) if members else None)
            for name, value in decoded.items()
        ),
    )


def _infer_type(value: Any) -> FieldType:
    if value is None:
        return FieldType("any", optional=True)
    if isinstance(value, np.ndarray):
        return FieldType("array", dtype=value.dtype.str, shape=tuple(value.shape))
    if isinstance(value, ImageInfo):
        return value.field_type()
    for kind, types in (
        ("bool", bool),
        ("int", int),
        ("float", float),
        ("str", str),
        ("bytes", bytes),
    ):
        if isinstance(value, types):
            return FieldType(kind)  # type: ignore[arg-type]
    if isinstance(value, list | tuple):
        items = {_infer_type(v) for v in value}
        item = items.pop() if len(items) == 1 else FieldType("any")
        return FieldType("list", item=item)
    if isinstance(value, dict):
        return FieldType("dict", item=FieldType("any"))
    return FieldType("any")


# -- showing values ----------------------------------------------------------------------------
def display_value(value: Any) -> str:
    """A short text form: arrays as dtype and shape, bytes as a length, long text cut."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype.name} {_shape_text(value.shape)}"
    if isinstance(value, ImageInfo):
        return value.text()
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value):,} bytes>"
    if isinstance(value, str):
        return repr(value if len(value) <= _TEXT_WIDTH else value[: _TEXT_WIDTH - 1] + "…")
    if isinstance(value, list | tuple):
        inner = ", ".join(display_value(v) for v in value[:4])
        more = f", … ({len(value)} items)" if len(value) > 4 else ""
        return f"[{inner}{more}]"
    if isinstance(value, dict):
        inner = ", ".join(f"{k}: {display_value(v)}" for k, v in list(value.items())[:4])
        more = f", … ({len(value)} keys)" if len(value) > 4 else ""
        return f"{{{inner}{more}}}"
    if isinstance(value, np.generic):
        return repr(value.item())
    return repr(value)


def json_value(value: Any) -> Any:
    """A JSON form: arrays as ``{"dtype", "shape"}``, bytes as ``{"bytes": length}``."""
    if isinstance(value, np.ndarray):
        return {"dtype": value.dtype.name, "shape": list(value.shape)}
    if isinstance(value, ImageInfo):
        return value.json()
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": len(value)}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
