"""Declarative JSON (de)serialisation for the atmosphere's record classes.

A record class is a frozen dataclass whose fields say, in their metadata (:func:`json_field`), which
JSON key they come from, how a value read there is checked and converted (``parse``), how it is
written (``dump``) and when it is left out (``omit``). :class:`JsonObject` turns that into
``to_dict()`` / ``from_dict(data, path, where)``; the record classes in
:mod:`atdata.atmosphere.records` add the lexicon check around it.

Shapes and bounds (types, lengths, required keys) are the lexicon's job and are checked before
any ``parse`` runs (:func:`~atdata.atmosphere.lexicon.validate_record`); a ``parse`` applies
atdata's own rules for safe use and raises :class:`RecordValidationError` naming the JSON path
(``$.storage.shards[2].url``) and the record.
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from .lexicon import RecordValidationError

__all__ = ["JsonObject", "Parse", "each", "fail", "json_field", "omit_empty"]

#: ``parse(value, path, where)``: the checked Python value for the JSON ``value`` at ``path``.
Parse = Callable[[Any, str, "str | None"], Any]
_J = TypeVar("_J", bound="JsonObject")
_ABSENT: Any = object()


def fail(message: str, path: str, where: str | None) -> RecordValidationError:
    """The error for a value at ``path`` of the record ``where`` that atdata will not use."""
    return RecordValidationError(message, path=path, where=where)


def _is_none(value: Any) -> bool:
    return value is None


def omit_empty(value: Any) -> bool:
    """``omit=`` for fields written only when non-empty (tags, entry metadata)."""
    return not value


@dataclasses.dataclass(frozen=True)
class _Spec:
    key: tuple[str, ...]
    parse: Parse | None
    dump: Callable[[Any], Any] | None
    omit: Callable[[Any], bool] | None
    absent: Any
    in_content: bool


def json_field(
    json_key: str,
    *,
    parse: Parse | None = None,
    dump: Callable[[Any], Any] | None = None,
    omit: Callable[[Any], bool] | None = _is_none,
    absent: Any = _ABSENT,
    in_content: bool = True,
    **field_options: Any,
) -> Any:
    """A dataclass field read from and written to ``json_key`` (``"ref.$link"``: nested).

    ``parse`` checks and converts the value read (default: taken as is); ``dump`` converts for
    writing (default: as is); ``omit(value)`` true leaves the key out (default: when None;
    ``omit=None`` always writes it). A key missing from the data gives ``absent`` when set,
    else the field's default, else a ``KeyError`` (the lexicon has already required it).
    ``in_content=False`` keeps the field out of :meth:`JsonObject.content` (``createdAt``).
    ``field_options`` go to :func:`dataclasses.field` (``default``, ``default_factory``).
    """
    spec = _Spec(tuple(json_key.split(".")), parse, dump, omit, absent, in_content)
    return dataclasses.field(metadata={"json": spec}, **field_options)


def each(parse: Parse) -> Parse:
    """A ``parse`` for a JSON array: ``parse`` each item at ``path[i]``; gives a tuple."""

    def parse_all(items: Sequence[Any], path: str, where: str | None) -> tuple[Any, ...]:
        return tuple(parse(item, f"{path}[{i}]", where) for i, item in enumerate(items))

    return parse_all


def _specs(cls: type) -> list[tuple[str, _Spec]]:
    return [(f.name, f.metadata["json"]) for f in dataclasses.fields(cls) if "json" in f.metadata]


def _lookup(data: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    value: Any = data
    for k in keys:
        if not isinstance(value, Mapping) or k not in value:
            return _ABSENT
        value = value[k]
    return value


class JsonObject:
    """Base of the declarative classes: ``to_dict`` / ``from_dict`` from the field specs.

    ``TYPE`` (when set) is written as ``"$type"``; ``CONSTANTS`` are written as they are.
    Fields are read in declaration order, those named in ``READ_FIRST`` before the others (so
    that the first problem reported does not depend on the constructor's argument order).
    """

    TYPE: ClassVar[str | None] = None
    CONSTANTS: ClassVar[Mapping[str, Any]] = {}
    READ_FIRST: ClassVar[tuple[str, ...]] = ()

    def content(self) -> dict[str, Any]:
        """The JSON object without the fields marked ``in_content=False``."""
        return self._dump(content_only=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object this value is written as."""
        return self._dump(content_only=False)

    def _dump(self, *, content_only: bool) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.TYPE is None else {"$type": self.TYPE}
        for name, spec in _specs(type(self)):
            if content_only and not spec.in_content:
                continue
            value = getattr(self, name)
            if spec.omit is not None and spec.omit(value):
                continue
            target = out
            for k in spec.key[:-1]:
                target = target.setdefault(k, {})
            target[spec.key[-1]] = value if spec.dump is None else spec.dump(value)
        out.update(self.CONSTANTS)
        return out

    @classmethod
    def parse_fields(cls, data: Mapping[str, Any], path: str, where: str | None) -> dict[str, Any]:
        """The constructor arguments read from ``data`` (at ``path``), each field checked."""
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        values: dict[str, Any] = {}
        specs = _specs(cls)
        specs.sort(key=lambda item: item[0] not in cls.READ_FIRST)  # stable: keeps the rest
        for name, spec in specs:
            raw = _lookup(data, spec.key)
            if raw is _ABSENT:
                if spec.absent is not _ABSENT:
                    values[name] = spec.absent
                    continue
                f = fields[name]
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise KeyError(".".join(spec.key))
                continue
            at = f"{path}.{'.'.join(spec.key)}"
            values[name] = raw if spec.parse is None else spec.parse(raw, at, where)
        return values

    @classmethod
    def from_dict(
        cls: type[_J], data: Mapping[str, Any], path: str = "$", where: str | None = None
    ) -> _J:
        """The value ``data`` (found at ``path`` of the record ``where``) describes, checked."""
        return cls(**cls.parse_fields(data, path, where))

    @classmethod
    def parser(cls) -> Parse:
        """``from_dict`` as a ``parse`` for a field holding this class."""
        return cls.from_dict
