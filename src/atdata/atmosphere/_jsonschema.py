"""Our :class:`~atdata.schema.Schema` <-> the JSON-Schema body of a schema record.

Field kinds map to draft-07 properties::

    str    {"type": "string"}             bytes  {"type": "string", "format": "byte", "contentEncoding": "base64"}
    int    {"type": "integer"}            float  {"type": "number"}       bool {"type": "boolean"}
    array  {"$ref": NDARRAY_REF, "dtype": "<f4", "shape": [null, 3]}     (dtype/shape: ours, optional)
    list   {"type": "array", "items": P}  dict   {"type": "object", "additionalProperties": P}
    sample {"type": "object", "title": Name, "properties": {...}, "required": [...]}
    image  bytes plus {"atdataImage": {"format": "jpeg", "mode": "RGB", "shape": [...]}}   (ours; others see bytes)
    any    {}

Records are stored as DAG-CBOR, which sorts map keys, so each object also carries
``propertyOrder`` (its field names in declaration order; without it, the order received is used).
``required`` lists the fields without a default. Whether a field may be null follows atdata
0.7: a field outside ``required`` is optional (``X | None``). Where ours differ (a non-null field
with a default, or a nullable field without one), the property carries ``"nullable": true/false``.

Reading is strict about what it accepts (identifiers for field names, known property forms,
bounded nesting and size) and never evaluates anything: a record only ever becomes data.
"""

import re
from collections.abc import Mapping
from typing import Any

from ..errors import SchemaError
from ..schema import Field, FieldType, Schema

__all__ = ["JSON_SCHEMA_FORMAT", "NDARRAY_REF", "from_json_schema", "to_json_schema"]

JSON_SCHEMA_FORMAT = "science.alt.dataset.schema#jsonSchemaFormat"
DRAFT_07 = "http://json-schema.org/draft-07/schema#"
#: The ndarray-bytes definition array properties point at (the one atdata 0.7 uses).
NDARRAY_REF = "https://alt.science/schemas/atdata-ndarray-bytes/1.0.0#/$defs/ndarray"
ARRAY_FORMAT_VERSIONS = {"ndarrayBytes": "1.0.0"}
MAX_DEPTH = 16
MAX_FIELDS = 1024
MAX_DTYPE_CHARS = 64
MAX_DIMS = 32
_BYTES = {"type": "string", "format": "byte", "contentEncoding": "base64"}
_SCALARS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
_NON_IDENT = re.compile(r"[^A-Za-z0-9_]")


# ------------------------------------------------------------------------------- writing
def to_json_schema(schema: Schema) -> dict[str, Any]:
    """The ``schema`` union member (with ``$type``) for a schema record."""
    body: dict[str, Any] = {
        "$type": JSON_SCHEMA_FORMAT,
        "$schema": DRAFT_07,
        "type": "object",
    }
    body.update(_object_body(schema.fields))
    if _has_array(schema.fields):
        body["arrayFormatVersions"] = dict(ARRAY_FORMAT_VERSIONS)
    return body


def _object_body(fields: tuple[Field, ...]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in fields:
        prop = _property(f.type)
        if f.type.optional == f.required:  # differs from "optional iff not required"
            prop["nullable"] = f.type.optional
        if f.members is not None:  # member layout: the tar member extensions (ours)
            prop["members"] = list(f.members)
        props[f.name] = prop
        if f.required:
            required.append(f.name)
    out: dict[str, Any] = {"properties": props, "propertyOrder": list(props)}
    if required:
        out["required"] = required
    return out


def _property(ft: FieldType) -> dict[str, Any]:
    if ft.kind in _SCALARS:
        return {"type": _SCALARS[ft.kind]}
    if ft.kind == "bytes":
        return dict(_BYTES)
    if ft.kind == "image":
        return {**_BYTES, "atdataImage": ft.media.to_dict() if ft.media else {}}
    if ft.kind == "array":
        prop: dict[str, Any] = {"$ref": NDARRAY_REF}
        if ft.dtype is not None:
            prop["dtype"] = ft.dtype
        if ft.shape is not None:
            prop["shape"] = list(ft.shape)
        return prop
    if ft.kind in ("list", "dict"):
        inner = _item_property(ft.item)
        if ft.kind == "list":
            return {"type": "array", "items": inner}
        return {"type": "object", "additionalProperties": inner}
    if ft.kind == "sample":
        if ft.schema is None:
            return {"type": "object", "properties": {}}
        nested: dict[str, Any] = {"type": "object", "title": ft.schema.name}
        if ft.schema.description:
            nested["description"] = ft.schema.description
        if ft.schema.version != "1.0.0":
            nested["version"] = ft.schema.version
        nested.update(_object_body(ft.schema.fields))
        return nested
    return {}  # any


def _item_property(item: FieldType | None) -> dict[str, Any]:
    if item is None:
        return {}
    prop = _property(item)
    if item.optional:
        prop["nullable"] = True
    return prop


def _has_array(fields: tuple[Field, ...]) -> bool:
    def walk(ft: FieldType | None) -> bool:
        if ft is None:
            return False
        if ft.kind == "array":
            return True
        if ft.kind == "sample" and ft.schema is not None:
            return _has_array(ft.schema.fields)
        return walk(ft.item)

    return any(walk(f.type) for f in fields)


# ------------------------------------------------------------------------------- reading
def from_json_schema(
    body: Mapping[str, Any], *, name: str, version: str, description: str | None
) -> Schema:
    """A Schema from a record's JSON-Schema body; SchemaError (with a ``$.path``) if malformed.

    ``name`` is the record's display name, turned into an identifier if it is not one.
    """
    counter = [0]
    fields = _fields(body, "$.schema", 0, counter)
    raw = {
        "name": safe_identifier(name),
        "version": version,
        "fields": fields,
        "description": description,
    }
    return Schema.from_dict(raw)


def safe_identifier(name: str) -> str:
    """``name`` as a Python identifier: other characters become ``_``; never empty or a digit first."""
    ident = _NON_IDENT.sub("_", name)[:128] or "Sample"
    if ident[0].isdigit():
        ident = "_" + ident[:127]
    import keyword

    return ident + "_" if keyword.iskeyword(ident) else ident


def _fields(body: Mapping[str, Any], path: str, depth: int, counter: list[int]) -> list[Any]:
    props = body.get("properties")
    if not isinstance(props, Mapping):
        raise SchemaError(f"{path}.properties must be an object", path=path)
    required = body.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise SchemaError(f"{path}.required must be a list of field names", path=path)
    unknown = [r for r in required if r not in props]
    if unknown:
        raise SchemaError(f"{path}.required names unknown fields {unknown[:5]}", path=path)
    order = body.get("propertyOrder")
    if order is None:
        names = list(props)
    elif (
        isinstance(order, list)
        and len(order) == len(props)
        and all(isinstance(n, str) for n in order)
        and set(order) == set(props)
    ):
        names = order
    else:
        raise SchemaError(f"{path}.propertyOrder must list each property once", path=path)
    out = []
    for fname in names:
        prop = props[fname]
        counter[0] += 1
        if counter[0] > MAX_FIELDS:
            raise SchemaError(f"more than {MAX_FIELDS} fields in one schema", path=path)
        fpath = f"{path}.properties.{str(fname)[:64]}"
        if not isinstance(fname, str):
            raise SchemaError(f"{fpath}: field names must be strings", path=fpath)
        if fname.startswith("__"):
            raise SchemaError(f"{fpath}: field names may not start with '__'", path=fpath)
        ftype = _field_type(prop, fpath, depth, counter)
        is_required = fname in required
        nullable = prop.get("nullable") if isinstance(prop, Mapping) else None
        if nullable is not None and not isinstance(nullable, bool):
            raise SchemaError(f"{fpath}.nullable must be true or false", path=fpath)
        ftype["optional"] = bool(ftype.get("optional")) or (
            nullable if nullable is not None else not is_required
        )
        field: dict[str, Any] = {"name": fname, "type": ftype, "required": is_required}
        members = prop.get("members") if isinstance(prop, Mapping) else None
        if members is not None:  # validated by Schema.from_dict
            field["members"] = members
        out.append(field)
    return out


def _field_type(prop: Any, path: str, depth: int, counter: list[int]) -> dict[str, Any]:
    """A FieldType dict (Schema.to_dict form) for one property."""
    if depth > MAX_DEPTH:
        raise SchemaError(f"{path}: nested more than {MAX_DEPTH} levels", path=path)
    if not isinstance(prop, Mapping):
        raise SchemaError(f"{path} must be an object", path=path)
    optional = False
    type_ = prop.get("type")
    if isinstance(type_, list):  # draft-07 ["integer", "null"]
        others = [t for t in type_ if t != "null"]
        if len(others) != 1 or len(type_) != 2:
            raise SchemaError(f"{path}: only [T, 'null'] type lists are supported", path=path)
        type_, optional = others[0], True
    ref = prop.get("$ref")
    if ref is not None:
        if not isinstance(ref, str) or "ndarray" not in ref.lower():
            raise SchemaError(
                f"{path}: unsupported $ref {str(ref)[:100]!r} (only ndarray-bytes arrays)",
                path=path,
            )
        out: dict[str, Any] = {"kind": "array"}
        dtype = prop.get("dtype")
        if dtype is not None:
            if not isinstance(dtype, str) or len(dtype) > MAX_DTYPE_CHARS:
                raise SchemaError(f"{path}.dtype must be a short dtype string", path=path)
            out["dtype"] = dtype
        shape = prop.get("shape")
        if shape is not None:
            if not isinstance(shape, list) or len(shape) > MAX_DIMS:
                raise SchemaError(f"{path}.shape must be a list of at most {MAX_DIMS}", path=path)
            out["shape"] = shape
    elif type_ == "string" and "atdataImage" in prop:
        out = {"kind": "image", "image": prop["atdataImage"]}
    elif type_ == "string":
        is_bytes = prop.get("format") == "byte" or prop.get("contentEncoding") == "base64"
        out = {"kind": "bytes" if is_bytes else "str"}
    elif type_ in ("integer", "number", "boolean"):
        out = {"kind": {"integer": "int", "number": "float", "boolean": "bool"}[type_]}
    elif type_ == "array":
        items = prop.get("items", {})
        out = {"kind": "list", "item": _item(items, path + ".items", depth, counter)}
    elif type_ == "object" and "properties" in prop:
        title = prop.get("title", "Nested")
        if not isinstance(title, str) or len(title) > 200:
            raise SchemaError(f"{path}.title must be a short string", path=path)
        nested: dict[str, Any] = {
            "name": safe_identifier(title),
            "fields": _fields(prop, path, depth + 1, counter),
        }
        version = prop.get("version", "1.0.0")
        desc = prop.get("description")
        if isinstance(version, str) and len(version) <= 100:
            nested["version"] = version
        if isinstance(desc, str) and len(desc) <= 5000:
            nested["description"] = desc
        out = {"kind": "sample", "schema": nested}
    elif type_ == "object":
        extra = prop.get("additionalProperties", {})
        if extra is True:
            extra = {}
        out = {"kind": "dict", "item": _item(extra, path + ".additionalProperties", depth, counter)}
    elif type_ is None and not (set(prop) - {"description", "title", "nullable", "$comment"}):
        out = {"kind": "any"}
    else:
        raise SchemaError(f"{path}: unsupported property type {str(type_)[:60]!r}", path=path)
    if optional:
        out["optional"] = True
    return out


def _item(prop: Any, path: str, depth: int, counter: list[int]) -> dict[str, Any]:
    out = _field_type(prop, path, depth + 1, counter)
    nullable = prop.get("nullable") if isinstance(prop, Mapping) else None
    if nullable is True:
        out["optional"] = True
    return out
