"""Member layout: a sample stored as several tar members sharing a key (``000123.jpg``,
``000123.txt``, ``000123.json``, ...), as WebDataset, img2dataset and HF tooling write them.

A sample type is read in member layout when a field is declared with :func:`member`; every field
then comes from the member(s) of its key whose extension it names (by default its own name)::

    @atdata.packable
    class Photo:
        image: bytes = atdata.member("jpg", "jpeg", "png", "webp")
        caption: str = atdata.member("txt")
        label: int = atdata.member("cls")
        meta: dict = atdata.member("json")
        embedding: NDArray[np.float32] | None = atdata.member("npy", default=None)

The extensions are recorded in the type's schema (``Field.members``), so a type rebuilt from a
stored schema reads the same layout with no class.

How a member's bytes become a field value goes through the field's *stored form*, the value the
msgpack layout keeps for that field: the member is turned into that value by a
:class:`MemberCodec` chosen by the field's kind, and the type's ordinary codec
(:func:`atdata.codec.codec_for`) then converts and validates it exactly as for a msgpack sample.
Built in: ``str`` <- utf-8 text, ``int``/``float``/``bool`` <- ASCII text (``cls``), ``dict``,
``list`` and ``any`` <- JSON, arrays <- ``.npy`` (read by the bounded parser of
:mod:`atdata._npy`, never unpickled), ``bytes`` (and any kind without a codec) <- the raw bytes.
Field kinds added elsewhere (e.g. encoded images) register their own codec with
:func:`register_member_codec`.

Every member is bounded before it is decoded (``ATDATA_MAX_MEMBER_BYTES``, default 1 GiB): the
shard readers refuse larger members, and decoding here refuses them again.
"""

import dataclasses
import io
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .codec import field_defaults
from .errors import InvalidArgumentError, SchemaError
from .media.members import ImageMemberCodec

__all__ = [
    "MEMBER_METADATA",
    "MemberLayout",
    "MemberCodec",
    "decode_member",
    "encode_members",
    "member",
    "member_layout",
    "member_codec",
    "register_member_codec",
]

#: The key under which :func:`member` stores a field's extensions in its dataclass metadata.
MEMBER_METADATA = "atdata.member"
_EXTENSION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")


@runtime_checkable
class MemberCodec(Protocol):
    """Turns one tar member into a field's stored form and back.

    ``extensions``: the member extensions a field of this kind is read from when it names none
    (in order of preference; ``()`` for none). ``decode(data, ext)``: the stored form of the field
    from the member's bytes and extension (raise :class:`~atdata.errors.SchemaError` on bad
    bytes; the caller adds the shard, key and field). ``encode(value)``: ``(extension, bytes)``
    of the member for a stored-form value; ``extension`` is ``None`` to use the field's first
    declared extension.
    """

    extensions: tuple[str, ...]

    def decode(self, data: bytes, ext: str) -> Any: ...

    def encode(self, value: Any) -> tuple[str | None, bytes]: ...


def member(
    *extensions: str,
    default: Any = dataclasses.MISSING,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
) -> Any:
    """Declare that a field is read from (and written to) the member of its sample's key with
    one of ``extensions`` (the first one present is read; the first is written). With no
    extensions the field's own name is the extension. ``default``/``default_factory`` as in
    :func:`dataclasses.field` (a default makes the member optional)."""
    for ext in extensions:
        check_extension(ext)
    meta = {MEMBER_METADATA: tuple(e.lower() for e in extensions)}
    if default is not dataclasses.MISSING:
        return dataclasses.field(default=default, metadata=meta)
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(metadata=meta)


def check_extension(ext: object) -> str:
    """``ext`` if it is a plausible member extension (``jpg``, ``seg.png``), else an error."""
    if not isinstance(ext, str) or not _EXTENSION.fullmatch(ext) or ".." in ext:
        raise InvalidArgumentError(
            f"a member extension is letters, digits, '_', '-' and '.' (up to 32), got {ext!r}"
        )
    return ext


# --------------------------------------------------------------------------- built-in codecs
class _Raw:
    extensions: tuple[str, ...] = ()

    def decode(self, data: bytes, ext: str) -> Any:
        return bytes(data)

    def encode(self, value: Any) -> tuple[str | None, bytes]:
        if isinstance(value, bytes | bytearray | memoryview):
            return None, bytes(value)
        raise SchemaError(f"cannot store a {type(value).__name__} as raw member bytes")


class _Text:
    extensions: tuple[str, ...] = ("txt",)

    def decode(self, data: bytes, ext: str) -> Any:
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SchemaError(f"the .{ext} member is not utf-8 text ({exc.reason})") from None

    def encode(self, value: Any) -> tuple[str | None, bytes]:
        return None, str(value).encode("utf-8")


class _Number:
    """int / float / bool as ASCII text (WebDataset's ``.cls``, ``.index``, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.extensions: tuple[str, ...] = ("cls",) if kind == "int" else ()

    def decode(self, data: bytes, ext: str) -> Any:
        text = bytes(data[:64]).strip() if len(data) <= 64 else None
        try:
            if text is None:
                raise ValueError("too long")
            s = text.decode("ascii")
            if self.kind == "int":
                return int(s)
            if self.kind == "float":
                return float(s)
            if s.lower() in ("true", "1"):
                return True
            if s.lower() in ("false", "0"):
                return False
            raise ValueError(s)
        except (ValueError, UnicodeDecodeError):
            shown = bytes(data[:20])
            raise SchemaError(f"the .{ext} member is not a {self.kind} ({shown!r})") from None

    def encode(self, value: Any) -> tuple[str | None, bytes]:
        if self.kind == "bool":
            return None, b"1" if value else b"0"
        return None, repr(value).encode("ascii")


class _Json:
    extensions: tuple[str, ...] = ("json",)

    def decode(self, data: bytes, ext: str) -> Any:
        try:
            return json.loads(bytes(data))
        except (ValueError, RecursionError) as exc:
            raise SchemaError(f"the .{ext} member is not valid JSON: {exc}") from None

    def encode(self, value: Any) -> tuple[str | None, bytes]:
        try:
            return None, json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"cannot store the value as JSON: {exc}") from None


class _Npy:
    """Arrays as ``.npy`` members; the stored form is the ``.npy`` bytes themselves (the array
    codec reads them with the bounded parser, never unpickling)."""

    extensions: tuple[str, ...] = ("npy",)

    def decode(self, data: bytes, ext: str) -> Any:
        if bytes(data[:6]) != b"\x93NUMPY":
            raise SchemaError(f"the .{ext} member is not a .npy array")
        return data

    def encode(self, value: Any) -> tuple[str | None, bytes]:
        from .codec import decode_array

        arr = value if isinstance(value, np.ndarray) else decode_array(value)
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
        return None, buf.getvalue()


_CODECS: dict[str, MemberCodec] = {
    "bytes": _Raw(),
    "str": _Text(),
    "int": _Number("int"),
    "float": _Number("float"),
    "bool": _Number("bool"),
    "dict": _Json(),
    "list": _Json(),
    "any": _Json(),
    "array": _Npy(),
    "image": ImageMemberCodec(),
}
_RAW = _Raw()


def register_member_codec(kind: str, codec: MemberCodec) -> None:
    """Make ``codec`` read and write the fields of schema kind ``kind`` in member layout (for
    field kinds defined outside this module, e.g. encoded media). Registering a kind again
    replaces its codec."""
    if not isinstance(codec, MemberCodec):
        raise InvalidArgumentError(
            f"{codec!r} is not a MemberCodec (extensions, decode(data, ext), encode(value))"
        )
    _CODECS[kind] = codec


def member_codec(kind: str) -> MemberCodec:
    """The codec for fields of ``kind`` (raw bytes for kinds without one)."""
    return _CODECS.get(kind, _RAW)


# --------------------------------------------------------------------------- schema-free
_BY_EXTENSION: Mapping[str, MemberCodec] = {
    "txt": _CODECS["str"],
    "text": _CODECS["str"],
    "cls": _CODECS["int"],
    "cls2": _CODECS["int"],
    "index": _CODECS["int"],
    "json": _CODECS["dict"],
}


def decode_member(ext: str, data: bytes | memoryview, cap: int | None = None) -> Any:
    """A member decoded by its extension alone, for schema-free samples (DictSample): text,
    class labels, JSON and ``.npy`` arrays are decoded; anything else stays ``bytes``. A member
    of more than ``cap`` bytes is refused (SchemaError)."""
    if cap is not None and len(data) > cap:
        raise SchemaError(
            f"the .{ext} member holds {len(data)} bytes, more than ATDATA_MAX_MEMBER_BYTES ({cap})"
        )
    last = ext.rsplit(".", 1)[-1].lower()
    if last == "npy":
        from .codec import decode_array

        if bytes(data[:6]) != b"\x93NUMPY":
            raise SchemaError(f"the .{ext} member is not a .npy array")
        return np.array(decode_array(data))  # a copy: the member's buffer is not kept alive
    codec = _BY_EXTENSION.get(last)
    if codec is None:
        return bytes(data)
    return codec.decode(bytes(data), ext)


# --------------------------------------------------------------------------- typed layout
_SIGNATURES = (
    (b"\xff\xd8\xff", ("jpg", "jpeg")),
    (b"\x89PNG\r\n\x1a\n", ("png",)),
    (b"GIF8", ("gif",)),
)


def _sniffed(data: bytes, declared: tuple[str, ...]) -> str:
    """The declared extension that matches the bytes' format (images), else the first one."""
    if len(declared) > 1:
        for magic, names in _SIGNATURES:
            if data.startswith(magic):
                for ext in declared:
                    if ext in names:
                        return ext
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and "webp" in declared:
            return "webp"
    return declared[0]


@dataclasses.dataclass(frozen=True)
class _FieldPlan:
    name: str
    path: str
    extensions: tuple[str, ...]
    codec: MemberCodec
    convert: Callable[[Any, str], Any]
    missing: Callable[[], Any] | None  # the value when no member is present (None: an error)


class MemberLayout:
    """How one member-layout sample type is read from and written to a key's members (built
    once per type, see :func:`member_layout`)."""

    def __init__(self, sample_type: type) -> None:
        from .codec import codec_for

        codec: Any = codec_for(sample_type)
        self.sample_type = sample_type
        self.codec = codec
        defaults = field_defaults(sample_type)
        plans = []
        for f in codec.schema.fields:
            if f.type.kind == "sample":
                raise SchemaError(
                    f"{codec.schema.name}.{f.name}: nested samples are not stored in member "
                    "layout (use a dict field read from .json)",
                    path=f"$.{f.name}",
                )
            exts = f.members or (f.name,)
            missing = defaults.get(f.name)
            if missing is None and (f.type.optional or not f.required):
                missing = _none
            plans.append(
                _FieldPlan(
                    f.name,
                    f"$.{f.name}",
                    exts,
                    member_codec(f.type.kind),
                    codec.field_decoder(f.name),
                    missing,
                )
            )
        self.fields = tuple(plans)
        self.extensions = frozenset(e for p in plans for e in p.extensions)

    def decode(self, parts: Mapping[str, Any], cap: int | None = None) -> Any:
        """A sample from its key's members ``{extension: bytes}``; SchemaError naming the field
        and the missing or bad member (the caller adds the shard and key). A member of more than
        ``cap`` bytes (``ATDATA_MAX_MEMBER_BYTES``, passed by the reader) is refused."""
        values: dict[str, Any] = {}
        for p in self.fields:
            for ext in p.extensions:
                data = parts.get(ext)
                if data is not None:
                    break
            else:
                if p.missing is None:
                    raise SchemaError(
                        f"{p.path}: the sample has no member with extension "
                        f"{' / '.join('.' + e for e in p.extensions)} (it has "
                        f"{', '.join('.' + e for e in sorted(parts)) or 'none'})",
                        path=p.path,
                    )
                values[p.name] = p.missing()
                continue
            if cap is not None and len(data) > cap:
                raise SchemaError(
                    f"{p.path}: the .{ext} member holds {len(data)} bytes, more than "
                    f"ATDATA_MAX_MEMBER_BYTES ({cap})",
                    path=p.path,
                )
            try:
                stored = p.codec.decode(data, ext)
            except SchemaError as exc:
                raise SchemaError(f"{p.path}: {exc}", path=p.path) from None
            values[p.name] = p.convert(stored, p.path)
        obj: Any = object.__new__(self.sample_type)
        obj.__dict__ = values
        return obj

    def encode(self, sample: Any) -> list[tuple[str, bytes]]:
        """The members ``(extension, bytes)`` of ``sample`` (absent optional values: none)."""
        stored = self.codec.to_map(sample)
        out: list[tuple[str, bytes]] = []
        for p in self.fields:
            value = stored[p.name]
            if value is None and p.missing is not None:
                continue
            try:
                ext, data = p.codec.encode(value)
            except SchemaError as exc:
                raise SchemaError(f"{p.path}: {exc}", path=p.path) from None
            out.append((ext or _sniffed(data, p.extensions), data))
        return out


def encode_members(data: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """A schema-free sample ``{extension: value}`` as members: bytes as they are, ``str`` as
    utf-8, ``int``/``float``/``bool`` as ASCII text, ``np.ndarray`` as ``.npy``, anything else
    as JSON (what :func:`decode_member` reads back for ``txt``, ``cls``, ``json``, ``npy``)."""
    out: list[tuple[str, bytes]] = []
    from .media.image import Image

    for ext, given in data.items():
        check_extension(ext)
        if given is None:
            continue
        value = given.data if isinstance(given, Image) else given  # an image: its bytes
        codec: MemberCodec
        if isinstance(value, bytes | bytearray | memoryview):
            codec = _RAW
        elif isinstance(value, str):
            codec = _CODECS["str"]
        elif isinstance(value, bool):
            codec = _CODECS["bool"]
        elif isinstance(value, int | float):
            codec = _CODECS["int" if isinstance(value, int) else "float"]
        elif isinstance(value, np.ndarray):
            codec = _CODECS["array"]
        else:
            codec = _CODECS["dict"]
        try:
            out.append((ext, codec.encode(value)[1]))
        except SchemaError as exc:
            raise SchemaError(f"$.{ext}: {exc}", path=f"$.{ext}") from None
    return out


def _none() -> None:
    return None


def member_layout(sample_type: type) -> MemberLayout | None:
    """The member layout of a sample type, or None when it is stored as msgpack (or is not a
    packable type at all)."""
    cached = sample_type.__dict__.get("__atdata_members__")
    if cached is not None:
        return cached if isinstance(cached, MemberLayout) else None
    from .schema import Schema

    schema = sample_type.__dict__.get("__atdata_schema__")
    if not isinstance(schema, Schema):
        return None
    layout = MemberLayout(sample_type) if schema.layout == "members" else None
    type.__setattr__(sample_type, "__atdata_members__", layout or False)
    return layout
