"""Schemas: the field model of a sample type, derived from annotations once per type.

A :class:`Schema` is plain data (name, version and typed fields with dtype and shape for arrays).
It is built from a class's annotations, stored as a record in an index or on the atmosphere, and
turned back into a working sample type with :meth:`Schema.to_sample_type` without generating or
executing any code.
"""

import dataclasses
import functools
import hashlib
import json
import keyword
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .errors import InvalidArgumentError, SchemaError
from .media.image import Image
from .media.spec import ImageSpec

__all__ = [
    "MAX_SCHEMA_DEPTH",
    "Field",
    "FieldType",
    "Schema",
    "Shape",
    "register_sample_type_builder",
    "validate_identifier",
]

Kind = Literal[
    "str", "int", "float", "bool", "bytes", "array", "image", "list", "dict", "sample", "any"
]
_SCALAR_KINDS: dict[type, Kind] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    bytes: "bytes",
}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")  # fullmatch: no trailing newline
SCHEMA_FORMAT_VERSION = 1
#: How deeply field types may nest (``list[list[...]]``, samples inside samples), on read and write.
MAX_SCHEMA_DEPTH = 64


@dataclass(frozen=True)
class Shape:
    """Declared array shape for ``Annotated[NDArray[...], Shape(224, 224, 3)]``; None is any size."""

    dims: tuple[int | None, ...]

    def __init__(self, *dims: int | None) -> None:
        for d in dims:
            if d is not None and (not isinstance(d, int) or d < 0):
                raise InvalidArgumentError(
                    f"Shape dimensions must be non-negative ints or None, got {d!r}"
                )
        object.__setattr__(self, "dims", tuple(dims))


@dataclass(frozen=True)
class FieldType:
    """The type of one field: a kind plus what that kind needs (dtype/shape, item type, schema)."""

    kind: Kind
    optional: bool = False
    dtype: str | None = None
    shape: tuple[int | None, ...] | None = None
    item: "FieldType | None" = None
    schema: "Schema | None" = None
    sample_type: type | None = dataclasses.field(default=None, compare=False, repr=False)
    media: ImageSpec | None = None  # kind "image": what the field declares

    def describe(self, array: Callable[["FieldType"], str] | None = None) -> str:
        """A short human-readable form, e.g. ``array[<f4, (64,)]`` or ``list[str] | None``.

        ``array`` formats array types instead (here and in list items), for other audiences.
        """
        if self.kind == "array" and array is not None:
            text = array(self)
        elif self.kind == "array":
            parts = [self.dtype or "any"]
            if self.shape is not None:
                parts.append(
                    "(" + ", ".join("?" if d is None else str(d) for d in self.shape) + ")"
                )
            text = f"array[{', '.join(parts)}]"
        elif self.kind == "image":
            text = (self.media or ImageSpec()).describe()
        elif self.kind in ("list", "dict"):
            inner = self.item.describe(array) if self.item else "any"
            text = f"list[{inner}]" if self.kind == "list" else f"dict[str, {inner}]"
        elif self.kind == "sample":
            text = self.schema.name if self.schema else "sample"
        else:
            text = self.kind
        return text + (" | None" if self.optional else "")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.optional:
            out["optional"] = True
        if self.dtype is not None:
            out["dtype"] = self.dtype
        if self.shape is not None:
            out["shape"] = list(self.shape)
        if self.item is not None:
            out["item"] = self.item.to_dict()
        if self.schema is not None:
            out["schema"] = self.schema.to_dict()
        if self.kind == "image":
            out["image"] = (self.media or ImageSpec()).to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "$", *, depth: int = 0) -> "FieldType":
        if not isinstance(data, Mapping):
            raise SchemaError(
                f"the type at {path} must be a mapping, got {type(data).__name__}", path=path
            )
        _check_depth(depth, path)
        kind = data.get("kind")
        if kind not in (
            "str",
            "int",
            "float",
            "bool",
            "bytes",
            "array",
            "image",
            "list",
            "dict",
            "sample",
            "any",
        ):
            raise SchemaError(f"unknown field kind {kind!r} at {path}", path=path)
        dtype = data.get("dtype")
        if dtype is not None:
            dtype = _checked_dtype(dtype, path).str
        shape = data.get("shape")
        if shape is not None:
            if not isinstance(shape, list) or not all(
                d is None or (type(d) is int and d >= 0) for d in shape
            ):
                raise SchemaError(f"bad array shape {shape!r} at {path}", path=path)
            shape = tuple(shape)
        item = data.get("item")
        schema = data.get("schema")
        media = ImageSpec.from_dict(data.get("image", {}), path) if kind == "image" else None
        return cls(
            kind=kind,
            optional=bool(data.get("optional", False)),
            dtype=dtype,
            shape=shape,
            item=cls.from_dict(item, path + "[]", depth=depth + 1) if item is not None else None,
            schema=Schema.from_dict(schema, depth=depth + 1) if schema is not None else None,
            media=media,
        )


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    required: bool = True
    #: member layout: the extensions of the tar members this field is read from (None: msgpack)
    members: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Schema:
    """The fields of a sample type. Equality is structural (name, fields)."""

    name: str
    fields: tuple[Field, ...]
    version: str = "1.0.0"
    description: str | None = None

    # -- building -------------------------------------------------------------------------
    @classmethod
    def from_type(cls, sample_type: type, *, depth: int = 0) -> "Schema":
        """Derive the schema of a dataclass-like sample type from its annotations.

        ``depth`` is how deeply this type is nested in another (see :data:`MAX_SCHEMA_DEPTH`).
        """
        cached = sample_type.__dict__.get("__atdata_schema__")
        if isinstance(cached, Schema):
            return cached
        try:
            hints = typing.get_type_hints(sample_type, include_extras=True)
        except Exception as exc:
            raise SchemaError(
                f"cannot resolve annotations of {sample_type.__qualname__}: {exc}"
            ) from exc
        if dataclasses.is_dataclass(sample_type):
            members = [(f.name, _has_default(f)) for f in dataclasses.fields(sample_type)]
        else:
            members = [(n, hasattr(sample_type, n)) for n in hints if not n.startswith("_")]
        fields = []
        layout = _member_extensions(sample_type)
        for name, has_default in members:
            ftype = field_type_of(hints[name], f"$.{name}", depth)
            exts = None if layout is None else layout.get(name) or (name,)
            fields.append(Field(name, ftype, required=not has_default, members=exts))
        return cls(
            name=sample_type.__name__, fields=tuple(fields), description=_docstring(sample_type)
        )

    # -- records --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "fields": [_field_dict(f) for f in self.fields],
            "formatVersion": SCHEMA_FORMAT_VERSION,
        }
        if self.description:
            out["description"] = self.description
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, depth: int = 0) -> "Schema":
        """The schema a record describes; SchemaError when it is malformed or nests too deeply.

        ``depth`` is how deeply this record is nested in another (field types count one level).
        """
        if not isinstance(data, Mapping):
            raise SchemaError(f"a schema record must be a mapping, got {type(data).__name__}")
        name = validate_identifier(data.get("name"), "schema name")
        raw_fields = data.get("fields")
        if not isinstance(raw_fields, list):
            raise SchemaError(f"schema {name!r} has no 'fields' list")
        fields = []
        seen: set[str] = set()
        for raw in raw_fields:
            if not isinstance(raw, Mapping):
                raise SchemaError(f"schema {name!r}: every field must be a mapping")
            fname = validate_identifier(raw.get("name"), f"field name in schema {name!r}")
            if fname in seen:
                raise SchemaError(
                    f"schema {name!r} declares field {fname!r} twice", path=f"$.{fname}"
                )
            seen.add(fname)
            ftype = FieldType.from_dict(raw.get("type") or {}, f"$.{fname}", depth=depth)
            fields.append(
                Field(
                    fname,
                    ftype,
                    required=bool(raw.get("required", True)),
                    members=_members_from(raw.get("members"), f"$.{fname}"),
                )
            )
        version = data.get("version", "1.0.0")
        if not isinstance(version, str):
            raise SchemaError(f"schema {name!r}: version must be a string")
        desc = data.get("description")
        return cls(
            name=name,
            fields=tuple(fields),
            version=version,
            description=desc if isinstance(desc, str) else None,
        )

    @functools.cached_property
    def identity(self) -> str:
        """A fingerprint of what the schema's samples *are*: its name and fields (names, types,
        dtypes, shapes, requiredness, in order, nested schemas included), not its version or
        descriptions. A class and the class rebuilt from its stored schema share it; lenses are
        matched by it.
        """
        canonical = json.dumps(
            _without_prose(self.to_dict()), sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def layout(self) -> str:
        """``"members"`` when samples are stored as several members per key (fields declared
        with :func:`atdata.member`), else ``"msgpack"`` (one ``<key>.msgpack`` member)."""
        return "members" if any(f.members is not None for f in self.fields) else "msgpack"

    def same_fields(self, other: "Schema") -> bool:
        """True when both schemas describe the same fields (names, types, requiredness, order)."""
        return self.fields == other.fields

    def with_version(self, version: str) -> "Schema":
        return dataclasses.replace(self, version=version)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    # -- rebuilding ------------------------------------------------------------------------
    def to_sample_type(self) -> type:
        """A working packable sample type for this schema, built without generating code."""
        if not _SAMPLE_TYPE_BUILDER:  # importing atdata (any submodule) imports atdata.sample
            raise SchemaError(f"schema {self.name}: atdata.sample is not imported")
        return _SAMPLE_TYPE_BUILDER[0](self)


# The sample layer above hands its type builder down when it is imported (the package root imports
# it before any submodule is used), so that this module never imports upward.
_SAMPLE_TYPE_BUILDER: list[Callable[[Schema], type]] = []


def register_sample_type_builder(build: Callable[[Schema], type]) -> None:
    """Called once by :mod:`atdata.sample`: how :meth:`Schema.to_sample_type` builds a type."""
    _SAMPLE_TYPE_BUILDER[:] = [build]


def _field_dict(f: Field) -> dict[str, Any]:
    out: dict[str, Any] = {"name": f.name, "type": f.type.to_dict(), "required": f.required}
    if f.members is not None:
        out["members"] = list(f.members)
    return out


_MEMBER_EXT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")


def _members_from(value: object, path: str) -> tuple[str, ...] | None:
    """A field record's member extensions (validated: they become parts of member names)."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= 16
        or not all(isinstance(e, str) and _MEMBER_EXT.fullmatch(e) and ".." not in e for e in value)
    ):
        raise SchemaError(f"bad member extensions {value!r} at {path}", path=path)
    return tuple(value)


def _member_extensions(sample_type: type) -> dict[str, tuple[str, ...]] | None:
    """Field name -> declared extensions when the type uses member layout (some field was
    declared with ``atdata.member``), else None."""
    if not dataclasses.is_dataclass(sample_type):
        return None
    declared = {
        f.name: f.metadata["atdata.member"]
        for f in dataclasses.fields(sample_type)
        if "atdata.member" in f.metadata
    }
    return declared or None


def _docstring(sample_type: type) -> str | None:
    """The class's own docstring; not the signature that ``dataclass`` puts there by default."""
    doc = sample_type.__dict__.get("__doc__")
    if not isinstance(doc, str) or doc.startswith(f"{sample_type.__name__}("):
        return None
    return doc.strip() or None


def _without_prose(value: Any) -> Any:
    """A schema dict without version, descriptions and format version (at every depth)."""
    if isinstance(value, dict):
        return {
            k: _without_prose(v)
            for k, v in value.items()
            if k not in ("version", "description", "formatVersion")
        }
    if isinstance(value, list):
        return [_without_prose(v) for v in value]
    return value


def validate_identifier(value: object, what: str) -> str:
    """Return ``value`` if it is a safe identifier (not a keyword, not a dunder), else SchemaError."""
    if (
        not isinstance(value, str)
        or not _IDENTIFIER.fullmatch(value)
        or keyword.iskeyword(value)
        or value.startswith("__")
    ):
        raise SchemaError(f"{what} must be a plain identifier (letters, digits, _), got {value!r}")
    return value


def _has_default(f: "dataclasses.Field[Any]") -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _checked_dtype(value: object, path: str) -> np.dtype[Any]:
    try:
        dt: np.dtype[Any] = np.dtype(value)  # type: ignore[call-overload]
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"bad dtype {value!r} at {path}", path=path) from exc
    if dt.hasobject:
        raise SchemaError(f"object dtypes cannot be stored (at {path})", path=path)
    if dt.names is not None or dt.subdtype is not None:
        raise SchemaError(
            f"structured and subarray dtypes ({dt}) cannot be stored (at {path})", path=path
        )
    return dt


def _check_depth(depth: int, path: str) -> None:
    if depth >= MAX_SCHEMA_DEPTH:
        raise SchemaError(
            f"field types nest more than {MAX_SCHEMA_DEPTH} levels deep at {path[:200]} "
            "(a recursive sample type cannot be stored)",
            path=path,
        )


def field_type_of(annotation: Any, path: str, depth: int = 0) -> FieldType:
    """Translate one annotation into a :class:`FieldType`; SchemaError names ``path``."""
    _check_depth(depth, path)
    annotation = _unalias(annotation, path)
    shape: tuple[int | None, ...] | None = None
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        args = typing.get_args(annotation)
        annotation = args[0]
        spec: ImageSpec | None = None
        for meta in args[1:]:
            if isinstance(meta, Shape):
                shape = meta.dims
            elif isinstance(meta, ImageSpec):
                spec = meta
        inner = field_type_of(annotation, path, depth)
        if inner.kind == "image":
            return _image_field(inner, spec, shape, path)
        if spec is not None:
            raise SchemaError(f"ImageSpec(...) annotates a non-image field at {path}", path=path)
        if shape is not None:
            if inner.kind != "array":
                raise SchemaError(f"Shape(...) annotates a non-array field at {path}", path=path)
            inner = dataclasses.replace(inner, shape=shape)
        return inner
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) != len(typing.get_args(annotation)) - 1 or len(members) != 1:
            raise SchemaError(
                f"only 'X | None' unions are supported, got {annotation!r} at {path}", path=path
            )
        return dataclasses.replace(field_type_of(members[0], path, depth), optional=True)
    if annotation is Any:
        return FieldType("any")
    if annotation is Image:
        return FieldType("image", media=ImageSpec())
    if annotation in _SCALAR_KINDS:
        return FieldType(_SCALAR_KINDS[annotation])
    if annotation is np.ndarray or origin is np.ndarray:
        return FieldType("array", dtype=_array_dtype(annotation, path))
    if origin in (list, typing.List):  # noqa: UP006
        (item,) = typing.get_args(annotation) or (Any,)
        return FieldType("list", item=field_type_of(item, path + "[]", depth + 1))
    if origin in (dict, typing.Dict):  # noqa: UP006
        key, value = typing.get_args(annotation) or (str, Any)
        if key is not str:
            raise SchemaError(f"dict keys must be str at {path}", path=path)
        return FieldType("dict", item=field_type_of(value, path + "{}", depth + 1))
    if isinstance(annotation, type) and (
        dataclasses.is_dataclass(annotation) or hasattr(annotation, "__atdata_schema__")
    ):
        schema = Schema.from_type(annotation, depth=depth + 1)
        return FieldType("sample", schema=schema, sample_type=annotation)
    raise SchemaError(f"unsupported field type {annotation!r} at {path}", path=path)


def _image_field(
    inner: FieldType, spec: ImageSpec | None, shape: tuple[int | None, ...] | None, path: str
) -> FieldType:
    """An image field's type with its ``ImageSpec`` (and a ``Shape`` as the spec's shape)."""
    spec = spec or ImageSpec()
    if shape is not None:
        try:
            spec = dataclasses.replace(spec, shape=shape)
        except InvalidArgumentError as exc:
            raise SchemaError(f"{exc} at {path}", path=path) from None
    return dataclasses.replace(inner, media=spec)


def _is_type_alias(obj: Any) -> bool:
    """``typing.TypeAliasType`` (``type X = ...``, 3.12+) or ``typing_extensions.TypeAliasType``."""
    return type(obj).__name__ == "TypeAliasType" and hasattr(obj, "__value__")


def _unalias(annotation: Any, path: str) -> Any:
    """``annotation`` with type aliases (and generic aliases of them) replaced by their value.

    numpy 2.5 defines ``NDArray`` as such an alias: ``NDArray[np.uint8]`` is the alias applied to
    ``np.uint8``, which expands to ``np.ndarray[tuple[Any, ...], np.dtype[np.uint8]]``.
    """
    for _ in range(MAX_SCHEMA_DEPTH):
        origin = typing.get_origin(annotation)
        if _is_type_alias(annotation):
            annotation = annotation.__value__
        elif origin is not None and _is_type_alias(origin):
            annotation = _apply_alias(origin, typing.get_args(annotation), path)
        else:
            return annotation
    raise SchemaError(f"type aliases nest too deeply at {path}", path=path)


def _apply_alias(alias: Any, args: tuple[Any, ...], path: str) -> Any:
    value = alias.__value__
    params = tuple(getattr(alias, "__type_params__", ()) or ())
    if len(params) != len(args):
        raise SchemaError(
            f"type alias {alias.__name__} takes {len(params)} argument(s), got {len(args)} "
            f"at {path}",
            path=path,
        )
    free = tuple(getattr(value, "__parameters__", ()) or ())
    if not free:
        return value
    bound = dict(zip(params, args, strict=True))
    try:
        return value[tuple(bound.get(p, Any) for p in free)]
    except TypeError as exc:
        raise SchemaError(f"cannot expand type alias {alias.__name__} at {path}: {exc}") from exc


def _array_dtype(annotation: Any, path: str) -> str | None:
    args = typing.get_args(annotation)
    if len(args) != 2:
        return None
    dtype_arg = args[1]
    scalar_args = typing.get_args(dtype_arg)
    if not scalar_args:
        return None
    scalar = scalar_args[0]
    if not isinstance(scalar, type) or not issubclass(scalar, np.generic):
        return None  # NDArray[Any] or a TypeVar: any dtype
    if scalar in (
        np.generic,
        np.number,
        np.integer,
        np.floating,
        np.signedinteger,
        np.unsignedinteger,
    ):
        return None
    return _checked_dtype(scalar, path).str
