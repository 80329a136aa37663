"""Which fields of a sample type a manifest summarises: ``Annotated[int, Indexed()]`` marks them.

Without any mark every scalar field (``int``, ``float``, ``bool``, ``str``, optional or not) is
summarised; with at least one, exactly the marked ones. Arrays, bytes, lists, dicts and nested
samples are never summarised (marking one is a :class:`~atdata.SchemaError`).
"""

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import SchemaError
from ..sample import DictSample
from ..schema import Schema

__all__ = ["FieldKind", "Indexed", "SCALAR_KINDS", "indexed_fields", "kind_of_value"]

FieldKind = Literal["int", "float", "bool", "str"]
SCALAR_KINDS: tuple[FieldKind, ...] = ("int", "float", "bool", "str")


@dataclass(frozen=True)
class Indexed:
    """Marks a scalar field to be summarised in shard manifests and queried through them:
    ``label: Annotated[int, atdata.Indexed()]``."""


def kind_of_value(value: Any) -> FieldKind | None:
    """The manifest kind of one plain value (None: not a scalar a manifest keeps)."""
    if type(value) is bool:
        return "bool"
    if type(value) is int:
        return "int"
    if type(value) is float:
        return "float"
    if type(value) is str:
        return "str"
    return None


def indexed_fields(sample_type: type, first: Any = None) -> dict[str, FieldKind]:
    """Field name -> kind for the manifests of ``sample_type`` (DictSample: inferred from
    ``first``, the first sample written)."""
    if sample_type is DictSample or sample_type is dict:
        data = first.to_dict() if isinstance(first, DictSample) else (first or {})
        out: dict[str, FieldKind] = {}
        for name, value in data.items():
            kind = kind_of_value(value)
            if isinstance(name, str) and kind is not None:
                out[name] = kind
        return out
    schema = Schema.from_type(sample_type)
    marked = _marked(sample_type)
    out = {}
    for f in schema.fields:
        field_kind = f.type.kind
        if f.name in marked and field_kind not in SCALAR_KINDS:
            raise SchemaError(
                f"Indexed() marks field $.{f.name} of kind {field_kind}: only int, float, bool "
                "and str fields can be indexed",
                path=f"$.{f.name}",
            )
        if field_kind in SCALAR_KINDS and (not marked or f.name in marked):
            out[f.name] = field_kind
    return out


def _marked(sample_type: type) -> set[str]:
    try:
        hints = typing.get_type_hints(sample_type, include_extras=True)
    except Exception:  # Schema.from_type reports unresolvable annotations
        return set()
    names = (
        [f.name for f in dataclasses.fields(sample_type)]
        if dataclasses.is_dataclass(sample_type)
        else list(hints)
    )
    marked = set()
    for name in names:
        if _has_mark(hints.get(name)):
            marked.add(name)
    return marked


def _has_mark(annotation: Any) -> bool:
    if typing.get_origin(annotation) is typing.Annotated:
        if any(isinstance(m, Indexed) for m in typing.get_args(annotation)[1:]):
            return True
        return _has_mark(typing.get_args(annotation)[0])
    return any(_has_mark(a) for a in typing.get_args(annotation) if a is not type(None))
