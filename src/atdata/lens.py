"""Lenses: typed, composable views from one sample type to another.

A :class:`Lens` has a ``get`` (source -> view) and optionally a ``put`` (view, source -> source)
that writes a changed view back. Lenses live in a :class:`LensRegistry`, an object you hold; the
default registry is current unless ``with registry.use():`` makes another one current. When no
direct lens exists the registry searches for the shortest chain (A -> B -> C) and composes it.
Every packable type also gets an automatic ``DictSample -> T`` lens.
"""

import contextvars
import typing
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar, cast

from .codec import codec_for
from .errors import LensError
from .sample import DictSample, is_packable

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

        return Lens(get, put, source=self.source, view=other.view, name=f"{self.name}>{other.name}")

    def __call__(self, sample: S) -> V:
        return self.get(sample)

    def __repr__(self) -> str:
        return f"Lens({self.name}: {self.source.__name__} -> {self.view.__name__})"


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


class LensRegistry:
    """Lenses by (source, view); finds composed paths when no direct lens exists."""

    def __init__(self) -> None:
        self._lenses: dict[tuple[type, type], Lens[Any, Any]] = {}

    def register(self, lens_: Lens[Any, Any]) -> Lens[Any, Any]:
        self._lenses[(lens_.source, lens_.view)] = lens_
        return lens_

    @property
    def lenses(self) -> Iterator[Lens[Any, Any]]:
        return iter(list(self._lenses.values()))

    def list_lenses(self) -> list[Lens[Any, Any]]:
        return list(self._lenses.values())

    def find(self, source: type[S], view: type[V]) -> Lens[S, V]:
        """The direct lens, else the shortest composition, else the automatic dict lens."""
        direct = self._lenses.get((source, view))
        if direct is not None:
            return direct
        if source is DictSample and is_packable(view):
            return cast(Lens[S, V], _dict_lens(view))
        path = self._search(source, view)
        if path is None:
            raise LensError(
                f"no lens from {source.__name__} to {view.__name__}; register one with @atdata.lens"
            )
        composed = path[0]
        for step in path[1:]:
            composed = composed.then(step)
        return composed

    def _search(self, source: type, view: type) -> list[Lens[Any, Any]] | None:
        queue: deque[tuple[type, list[Lens[Any, Any]]]] = deque([(source, [])])
        seen = {source}
        while queue:
            current, path = queue.popleft()
            for (src, dst), lens_ in self._lenses.items():
                if src is not current or dst in seen:
                    continue
                if dst is view:
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

    return Lens(get, put, source=DictSample, view=view, name=f"DictSample>{view.__name__}")


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
