"""Sample types: ``@packable`` dataclasses, the ``PackableSample`` base, and ``DictSample``.

A packable type is an ordinary dataclass whose schema is derived once from its annotations and
whose codec is compiled once (see :mod:`atdata.codec`). ``DictSample`` carries schema-free data.

Pickling: user classes (and their samples) pickle by reference, as any class does. A type rebuilt
from a stored schema has no importable home, so it pickles *by its schema*: the schema's dict is
pickled, and unpickling rebuilds the type from it (no code generated or imported), through a
process-wide cache, so that one schema gives one class object in every process.
"""

import copyreg
import dataclasses
import threading
from typing import Any, ClassVar, TypeVar, cast, dataclass_transform

from .dict_sample import DictSample, values_equal
from .errors import SchemaError
from .schema import Schema, register_sample_type_builder

__all__ = ["DictSample", "PackableSample", "is_packable", "packable", "rebuild_sample_type"]

T = TypeVar("T")


@dataclass_transform()
class PackableSample:
    """Base class of typed samples; subclasses become dataclasses automatically.

    >>> class Point(PackableSample):
    ...     x: int
    ...     y: int
    >>> Point.from_bytes(Point(1, 2).to_bytes())
    Point(x=1, y=2)
    """

    __atdata_schema__: ClassVar[Schema]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__atdata_rebuilt__" in cls.__dict__:
            return
        dataclasses.dataclass(cls)
        cls.__atdata_schema__ = Schema.from_type(cls)

    def to_bytes(self) -> bytes:
        """The msgpack body this sample is stored as (one tar member)."""
        from .codec import codec_for

        return codec_for(type(self)).encode(self)

    @classmethod
    def from_bytes(cls: type[T], body: bytes | memoryview) -> T:
        """Decode a msgpack body written by :meth:`to_bytes` (or by atdata 0.7)."""
        from .codec import codec_for

        return codec_for(cls).decode(body)


@dataclass_transform()
def packable(cls: type[T]) -> type[T]:
    """Turn an annotated class into a packable dataclass sample type.

    The returned class is a subclass of :class:`PackableSample` with the same name, module,
    fields, methods and docstring, so it can be pickled by name like the original.
    """
    if isinstance(cls, type) and issubclass(cls, PackableSample):
        return cls
    namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    bases = (*(b for b in cls.__bases__ if b is not object), PackableSample)
    new_cls: type[T] = type(cls.__name__, bases, namespace)
    return new_cls


def is_packable(obj: object) -> bool:
    """True for packable sample types (and rebuilt ones)."""
    return (
        isinstance(obj, type) and isinstance(obj.__dict__.get("__atdata_schema__"), Schema)
    ) or (isinstance(obj, type) and issubclass(obj, PackableSample))


class _RebuiltType(type):
    """Metaclass of rebuilt sample types; it only marks them for the pickling reducer below."""


class _RebuiltSample(PackableSample, metaclass=_RebuiltType):
    """Base of sample types rebuilt from a stored schema: no generated code, keyword init."""

    __atdata_rebuilt__ = True

    def __init__(self, **values: Any) -> None:
        schema = type(self).__atdata_schema__
        names = {f.name for f in schema.fields}
        unknown = set(values) - names
        if unknown:
            raise SchemaError(f"{schema.name} has no field(s) {sorted(unknown)}")
        for f in schema.fields:
            if f.name in values:
                self.__dict__[f.name] = values[f.name]
            elif not f.required or f.type.optional:
                self.__dict__[f.name] = None
            else:
                raise SchemaError(f"{schema.name} needs field {f.name!r}", path=f"$.{f.name}")

    def __repr__(self) -> str:
        schema = type(self).__atdata_schema__
        inner = ", ".join(f"{f.name}={self.__dict__.get(f.name)!r}" for f in schema.fields)
        return f"{schema.name}({inner})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(values_equal(self.__dict__.get(k), other.__dict__.get(k)) for k in self.__dict__)

    __hash__ = None  # type: ignore[assignment]


_REBUILT: dict[Schema, type[PackableSample]] = {}
_REBUILT_LOCK = threading.Lock()


def rebuild_sample_type(schema: Schema) -> type[PackableSample]:
    """The packable type for ``schema``, whose instances take keyword arguments.

    One class per schema (equal schemas give the same class object) in a process. Field names
    were validated as identifiers when the schema was read; nothing is executed.
    """
    cached = _REBUILT.get(schema)
    if cached is not None:
        return cached
    namespace: dict[str, Any] = {
        "__atdata_rebuilt__": True,
        "__atdata_schema__": schema,
        "__doc__": schema.description
        or f"Sample type rebuilt from schema {schema.name}@{schema.version}",
        "__module__": "atdata.rebuilt",
        "__qualname__": schema.name,
    }
    with _REBUILT_LOCK:
        cached = _REBUILT.get(schema)
        if cached is None:
            made = cast(
                type[PackableSample], _RebuiltType(schema.name, (_RebuiltSample,), namespace)
            )
            _REBUILT[schema] = cached = made
    return cached


def _rebuilt_from_dict(schema_dict: dict[str, Any]) -> type[PackableSample]:
    """Unpickling a rebuilt type: the same rebuild, from the schema's dict."""
    return rebuild_sample_type(Schema.from_dict(schema_dict))


def _reduce_rebuilt(cls: _RebuiltType) -> tuple[Any, tuple[Any, ...]]:
    schema = cls.__dict__.get("__atdata_schema__")
    if not isinstance(schema, Schema):  # _RebuiltSample itself
        return (_rebuilt_base, ())
    return (_rebuilt_from_dict, (schema.to_dict(),))


def _rebuilt_base() -> type[PackableSample]:
    return _RebuiltSample


# pickle consults copyreg's table for a class's metaclass before pickling the class by name
copyreg.pickle(_RebuiltType, _reduce_rebuilt)

# Schema.to_sample_type builds through this module; the schema layer below never imports it.
register_sample_type_builder(rebuild_sample_type)
