"""Lenses: typed, composable views from one sample type to another.

A :class:`Lens` has a ``get`` (source -> view) and optionally a ``put`` (view, source -> source)
that writes a changed view back. Lenses live in a :class:`LensRegistry`, an object you hold; the
default registry is current unless ``with registry.use():`` makes another one current. When no
direct lens exists the registry searches for the shortest chain (A -> B -> C) and composes it.
Every packable type also gets an automatic ``DictSample -> T`` lens.

Packable types are matched by schema identity (:attr:`atdata.Schema.identity`): a lens written
for your class ``Frame -> Gray`` also applies to the class ``load_dataset`` rebuilt from the
stored ``Frame`` schema, and to a rebuilt ``Gray``. The lens then receives an instance of the
class it was written for and its result comes back as the type that was asked for.

Lenses pickle: one made by ``@lens`` by reference to its module-level name (unpickling imports
that module, which registers it there too), a composed or adapted one as its parts.
"""

import contextvars
import importlib
import sys
import typing
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar, cast

from .codec import codec_for
from .errors import LensError
from .sample import DictSample, is_packable
from .schema import FieldType, Schema

__all__ = ["Lens", "LensRegistry", "current_registry", "default_registry", "lens"]

S = TypeVar("S")
V = TypeVar("V")
W = TypeVar("W")


class Lens(Generic[S, V]):
    """A view of ``source`` samples as ``view`` samples."""

    def __init__(
        self,
        get: Callable[[S], V],
        put: Callable[[V, S], S] | None = None,
        *,
        source: type[S] | None = None,
        view: type[V] | None = None,
        name: str | None = None,
    ) -> None:
        hints = _hints(get)
        self.source: type[S] = source or hints.get("source")  # type: ignore[assignment]
        self.view: type[V] = view or hints.get("return")  # type: ignore[assignment]
        if not isinstance(self.source, type) or not isinstance(self.view, type):
            raise LensError(
                f"lens {name or getattr(get, '__name__', get)!r} needs annotated source and view types "
                "(def f(s: Source) -> View) or explicit source=/view="
            )
        self._get = get
        self._put = put
        self.name = name or getattr(get, "__qualname__", "lens")
        # how to make this lens again where it is unpickled, when it is not a plain one
        self._recipe: tuple[Callable[..., Any], tuple[Any, ...]] | None = None

    def get(self, sample: S) -> V:
        try:
            return self._get(sample)
        except LensError:
            raise
        except Exception as exc:
            raise LensError(f"lens {self.name} failed on a {type(sample).__name__}: {exc}") from exc

    def put(self, view: V, source: S) -> S:
        """Write ``view`` back into ``source`` (needs a putter)."""
        if self._put is None:
            raise LensError(f"lens {self.name} has no putter; declare one with @{self.name}.putter")
        return self._put(view, source)

    @property
    def has_put(self) -> bool:
        return self._put is not None

    def putter(self, fn: Callable[[V, S], S]) -> Callable[[V, S], S]:
        """Decorator that sets the put direction."""
        self._put = fn
        return fn

    def then(self, other: "Lens[V, W]") -> "Lens[S, W]":
        """Compose: ``self`` then ``other`` (S -> V -> W)."""
        first, second = self, other

        def get(s: S) -> W:
            return second.get(first.get(s))

        put: Callable[[W, S], S] | None = None
        if first.has_put and second.has_put:

            def put(w: W, s: S) -> S:
                return first.put(second.put(w, first.get(s)), s)

        made = Lens(get, put, source=self.source, view=other.view, name=f"{self.name}>{other.name}")
        made._recipe = (_compose, (self, other))
        return made

    def __call__(self, sample: S) -> V:
        return self.get(sample)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        if self._recipe is not None:
            return self._recipe
        ref = _module_ref(self)
        if ref is not None:
            return (_lens_at, ref)
        return (_make_lens, (self._get, self._put, self.source, self.view, self.name))

    def __repr__(self) -> str:
        return f"Lens({self.name}: {self.source.__name__} -> {self.view.__name__})"


def _compose(first: Lens[S, V], second: Lens[V, W]) -> Lens[S, W]:
    return first.then(second)


def _make_lens(
    get: Callable[[S], V],
    put: Callable[[V, S], S] | None,
    source: type[S],
    view: type[V],
    name: str,
) -> Lens[S, V]:
    return Lens(get, put, source=source, view=view, name=name)


def _module_ref(lens_: Lens[Any, Any]) -> tuple[str, str] | None:
    """(module, qualified name) under which ``lens_`` itself is importable, if it is."""
    module = getattr(lens_._get, "__module__", None)
    qualname = getattr(lens_._get, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<locals>" in qualname:
        return None
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return (module, qualname) if found is lens_ else None


def _lens_at(module: str, qualname: str) -> Lens[Any, Any]:
    """The lens a module defines at top level (importing the module registers it there)."""
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise LensError(f"cannot unpickle lens {module}.{qualname}: {exc}") from exc
    if not isinstance(found, Lens):
        raise LensError(f"{module}.{qualname} is no longer a lens; cannot unpickle it")
    return found


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return {}
    params = [k for k in hints if k != "return"]
    out: dict[str, Any] = {}
    if params:
        out["source"] = hints[params[0]]
    if "return" in hints:
        out["return"] = hints["return"]
    return out


TypeKey = str | type


def type_key(t: type) -> TypeKey:
    """What lenses are matched on: a packable type's schema identity, else the type itself."""
    schema = t.__dict__.get("__atdata_schema__") if isinstance(t, type) else None
    return schema.identity if isinstance(schema, Schema) else t


class LensRegistry:
    """Lenses by (source, view) schema identity; finds composed paths when no direct lens
    exists."""

    def __init__(self) -> None:
        self._lenses: dict[tuple[TypeKey, TypeKey], Lens[Any, Any]] = {}

    def register(self, lens_: Lens[Any, Any]) -> Lens[Any, Any]:
        self._lenses[(type_key(lens_.source), type_key(lens_.view))] = lens_
        return lens_

    @property
    def lenses(self) -> Iterator[Lens[Any, Any]]:
        return iter(list(self._lenses.values()))

    def list_lenses(self) -> list[Lens[Any, Any]]:
        return list(self._lenses.values())

    def find(self, source: type[S], view: type[V]) -> Lens[S, V]:
        """The direct lens, else the shortest composition, else the automatic dict lens.

        Types are matched by schema identity; the lens found takes ``source`` samples and gives
        ``view`` samples (converting from and to the classes it was written for if they differ).
        """
        skey, vkey = type_key(source), type_key(view)
        if skey == vkey and source is not view:
            return cast(Lens[S, V], _retyping_lens(source, view))
        direct = self._lenses.get((skey, vkey))
        if direct is not None:
            return _adapted(direct, source, view)
        if source is DictSample and is_packable(view):
            return cast(Lens[S, V], _dict_lens(view))
        path = self._search(skey, vkey)
        if path is None:
            raise LensError(
                f"no lens from {source.__name__} to {view.__name__}; register one with @atdata.lens"
            )
        composed = _adapted(path[0], source, path[0].view)
        for step in path[1:]:
            composed = composed.then(_adapted(step, composed.view, step.view))
        return _adapted(composed, source, view)

    def _search(self, source: TypeKey, view: TypeKey) -> list[Lens[Any, Any]] | None:
        queue: deque[tuple[TypeKey, list[Lens[Any, Any]]]] = deque([(source, [])])
        seen = {source}
        while queue:
            current, path = queue.popleft()
            for (src, dst), lens_ in self._lenses.items():
                if src != current or dst in seen:
                    continue
                if dst == view:
                    return [*path, lens_]
                seen.add(dst)
                queue.append((dst, [*path, lens_]))
        return None

    @contextmanager
    def use(self) -> Iterator["LensRegistry"]:
        """Make this registry current inside the ``with`` block (context-local)."""
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)


def _dict_lens(view: type[V]) -> Lens[DictSample, V]:
    codec = codec_for(view)

    def get(sample: DictSample) -> V:
        return codec.from_map(sample.to_dict())

    def put(value: V, source: DictSample) -> DictSample:
        # the stored form (arrays as bytes, nested samples as maps), as a schema-free read gives
        # it, so that get(put(v, d)) == v; keys the view does not know are kept from the source
        return DictSample({**source.to_dict(), **codec.to_map(value)})

    made = Lens(get, put, source=DictSample, view=view, name=f"DictSample>{view.__name__}")
    made._recipe = (_dict_lens, (view,))
    return made


def _retype(sample: Any, cls: type) -> Any:
    """``sample`` as an instance of ``cls`` when its class has the same schema identity (fields
    copied shallowly); anything else as it is."""
    kind = type(sample)
    if kind is cls or not hasattr(sample, "__dict__") or type_key(kind) != type_key(cls):
        return sample
    values = dict(sample.__dict__)
    schema: Schema = cls.__dict__["__atdata_schema__"]
    for f in schema.fields:  # nested samples become the nested classes of ``cls``
        if _has_samples(f.type) and values.get(f.name) is not None:
            values[f.name] = _retype_value(values[f.name], f.type)
    obj: Any = object.__new__(cls)
    obj.__dict__ = values
    return obj


def _has_samples(ftype: FieldType) -> bool:
    return ftype.kind == "sample" or (ftype.item is not None and _has_samples(ftype.item))


def _retype_value(value: Any, ftype: FieldType) -> Any:
    if value is None:
        return None
    if ftype.kind == "sample":
        assert ftype.schema is not None
        return _retype(value, ftype.sample_type or ftype.schema.to_sample_type())
    item = ftype.item
    if item is None:
        return value
    if ftype.kind == "list" and isinstance(value, list):
        return [_retype_value(v, item) for v in value]
    if ftype.kind == "dict" and isinstance(value, dict):
        return {k: _retype_value(v, item) for k, v in value.items()}
    return value


def _retyping_lens(source: type[S], view: type[V]) -> Lens[S, V]:
    """The lens between two classes of the same schema (e.g. yours and a rebuilt one)."""

    def get(sample: S) -> V:
        return cast(V, _retype(sample, view))

    def put(value: V, _source: S) -> S:
        return cast(S, _retype(value, source))

    made = Lens(get, put, source=source, view=view, name=f"{source.__name__}~{view.__name__}")
    made._recipe = (_retyping_lens, (source, view))
    return made


def _adapted(lens_: Lens[Any, Any], source: type[S], view: type[V]) -> Lens[S, V]:
    """``lens_`` taking ``source`` and giving ``view`` samples, where those are other classes of
    the schemas it was written for: its getter and putter see the classes they were written for.
    """
    inner_source, inner_view = lens_.source, lens_.view
    if inner_source is source and inner_view is view:
        return cast(Lens[S, V], lens_)

    def get(sample: S) -> V:
        return cast(V, _retype(lens_.get(_retype(sample, inner_source)), view))

    put: Callable[[V, S], S] | None = None
    if lens_.has_put:

        def put(value: V, sample: S) -> S:
            written = lens_.put(_retype(value, inner_view), _retype(sample, inner_source))
            return cast(S, _retype(written, source))

    made: Lens[S, V] = Lens(get, put, source=source, view=view, name=lens_.name)
    made._recipe = (_adapted, (lens_, source, view))
    return made


default_registry = LensRegistry()
_CURRENT: contextvars.ContextVar[LensRegistry] = contextvars.ContextVar("atdata_lens_registry")


def current_registry() -> LensRegistry:
    """The registry made current by ``with registry.use():``, else the default one."""
    return _CURRENT.get(default_registry)


def lens(fn: Callable[[S], V]) -> Lens[S, V]:
    """Decorator: register ``fn`` (annotated ``(source: S) -> V``) in the current registry.

    >>> @lens
    ... def length(s: DictSample) -> int: ...  # doctest: +SKIP
    """
    made: Lens[S, V] = Lens(fn)
    current_registry().register(made)
    return made
