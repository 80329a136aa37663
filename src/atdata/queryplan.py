"""Running queries: ``Dataset.where``, ``count``, ``select`` and ``to_arrow``.

``ds.where(e)`` is ``ds.filter(e)`` with a shortcut: the filter stage it adds
(:class:`QueryFilter`) carries a :class:`Selector` that readers ask, before reading, which members
of a shard can match. A shard whose manifest's statistics rule the query out is never opened;
inside a shard with a usable manifest only the members its columns select are read; a shard
without one is read whole, and each body is tested on its scalar fields (arrays left as views,
not decoded) before the sample is decoded. Since the filter stage itself still tests every
sample that is read, the results (and their order, in every reading mode) are exactly those of
``ds.filter(e)``: a manifest can only make a query cheaper.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ._msgpack_view import unpack_map_view
from ._optional import require
from .errors import InvalidArgumentError, ShardError
from .manifest.load import ManifestCache
from .query import Column, Expr
from .shards.shardset import ShardSet

__all__ = [
    "QueryFilter",
    "Selector",
    "count_matching",
    "query_of",
    "select_columns",
    "to_arrow",
]

KEY = "__key__"


def sample_getter(sample: Any) -> Callable[[str], Any]:
    """How an expression reads a field of a decoded sample (typed or DictSample)."""
    if isinstance(sample, dict):
        return sample.get
    to_dict = getattr(sample, "to_dict", None)
    if type(sample).__name__ == "DictSample" and callable(to_dict):
        return to_dict().get  # type: ignore[no-any-return]
    return lambda name: getattr(sample, name, None)


class Selector:
    """Which members of each shard can match ``expr``, from the shards' manifests."""

    def __init__(self, expr: Expr, shards: ShardSet) -> None:
        self.expr = expr
        self.shards = shards
        self.manifests = ManifestCache(shards)
        self._masks: dict[int, np.ndarray[Any, Any] | None] = {}
        self.names = expr.field_names()

    def shard_mask(self, i: int) -> "np.ndarray[Any, Any] | None":
        """Member mask of shard ``i`` (all False: pruned), or None when it must be read."""
        if i in self._masks:
            return self._masks[i]
        mask: np.ndarray[Any, Any] | None = None
        manifest = self.manifests.get(i)
        if manifest is not None and self.names <= manifest.fields.keys():
            if not self.expr.may_match(manifest.fields):
                mask = np.zeros(manifest.count, dtype=bool)
                self.shards.count_from(i, manifest.count)  # its offset index is not loaded
            elif (manifest := self.manifests.confirmed(i)) is None:
                mask = None
            else:
                fields = manifest.fields
                try:
                    raw = manifest.columns_of(self.names)
                    columns = {n: Column(fields[n].kind, raw[n], fields[n].nulls) for n in raw}
                    positions = manifest.positions
                except ShardError as exc:
                    self.manifests.reject(i, str(exc))
                    self._masks[i] = None
                    return None
                rows = self.expr.mask(columns, manifest.count)
                mask = np.zeros(manifest.count, dtype=bool)
                mask[positions] = rows
        self._masks[i] = mask
        return mask

    def keep(
        self, shards: "np.ndarray[Any, Any]", members: "np.ndarray[Any, Any]"
    ) -> "np.ndarray[Any, Any]":
        """For each (shard, member) slot: False when it cannot match (True: read and test)."""
        out = np.ones(len(shards), dtype=bool)
        for i in np.unique(shards).tolist():
            mask = self.shard_mask(int(i))
            if mask is None:
                continue
            sel = shards == i
            out[sel] = mask[members[sel]]
        return out

    def unsure(self, shards: "np.ndarray[Any, Any]") -> "np.ndarray[Any, Any]":
        """For each slot: True when its shard has no usable manifest (its raw body is worth
        testing before it is decoded); slots the manifests selected match already."""
        out = np.zeros(len(shards), dtype=bool)
        for i in np.unique(shards).tolist():
            if self._masks.get(int(i)) is None:
                out[shards == i] = True
        return out


class QueryFilter:
    """The filter stage ``Dataset.where`` adds: tests decoded samples, and (through
    :meth:`selector` and :meth:`prefilter`) lets readers skip what cannot match."""

    def __init__(self, expr: Expr) -> None:
        self.expr = expr
        self._selectors: dict[int, tuple[ShardSet, Selector]] = {}

    def __call__(self, sample: Any) -> bool:
        return self.expr.matches(sample_getter(sample))

    def prefilter(self, body: Any) -> bool:
        """Whether a raw msgpack body can match (its arrays are not decoded to test it)."""
        try:
            data = unpack_map_view(memoryview(body))
        except Exception:
            return True  # the decoder names what is wrong with it
        if not isinstance(data, dict):
            return True
        return self.expr.matches(data.get)

    def selector(self, shards: ShardSet) -> Selector:
        found = self._selectors.get(id(shards))
        if found is None or found[0] is not shards:
            found = (shards, Selector(self.expr, shards))
            self._selectors[id(shards)] = found
        return found[1]

    def __getstate__(self) -> dict[str, Any]:
        return {"expr": self.expr, "_selectors": {}}

    def __repr__(self) -> str:
        return f"where{self.expr!r}"


def query_of(dataset: Any) -> tuple[Expr | None, bool]:
    """(the query of a ``where`` dataset or None, whether its stages are only that query)."""
    stages = dataset._stages
    if len(stages) == 1 and isinstance(stages[0].fn, QueryFilter):
        return stages[0].fn.expr, True
    return None, not stages


def count_matching(dataset: Any, expr: Expr | None) -> int:
    """Samples of ``dataset`` matching ``expr``: from manifests where they answer, else read."""
    own, plain = query_of(dataset)
    if not plain:
        if expr is not None:
            dataset = dataset.where(expr)
        return sum(1 for _ in dataset.ordered())
    full = own if expr is None else expr if own is None else own & expr
    shards: ShardSet = dataset.shards
    if full is None:
        return shards.total()
    selector = QueryFilter(full).selector(shards)
    total, unread = 0, []
    for i in range(len(shards)):
        mask = selector.shard_mask(i)
        if mask is None:
            unread.append(i)
        else:
            total += int(mask.sum())
    if unread:
        rest = dataset._subset(unread).where(full)
        total += sum(1 for _ in rest.ordered())
    return total


def select_columns(dataset: Any, fields: Sequence[str]) -> dict[str, list[Any]]:
    """The values of ``fields`` (``"__key__"``: sample keys) of every sample, in storage order."""
    if isinstance(fields, str) or not fields:
        raise InvalidArgumentError("select() takes a non-empty list of field names")
    names = list(fields)
    expr, plain = query_of(dataset)
    shards: ShardSet = dataset.shards
    if plain:
        selector = QueryFilter(expr).selector(shards) if expr is not None else None
        cache = selector.manifests if selector is not None else ManifestCache(shards)
        wanted = {n for n in names if n != KEY}
        out: dict[str, list[Any]] = {n: [] for n in names}
        usable = True
        for i in range(len(shards)):
            manifest = cache.get(i)
            if manifest is None or not wanted <= manifest.fields.keys():
                usable = False
                break
            try:
                manifest.columns  # noqa: B018 - decodes and checks the column block
            except ShardError as exc:
                cache.reject(i, str(exc))
                usable = False
                break
        if usable:
            for i in range(len(shards)):
                manifest = cache.get(i)
                assert manifest is not None
                mask = selector.shard_mask(i) if selector is not None else None
                rows = (
                    np.arange(manifest.count) if mask is None else np.flatnonzero(mask)
                ).tolist()
                keys = shards.offsets(i).keys
                for n in names:
                    if n == KEY:
                        out[n].extend(keys[r] for r in rows)
                    else:
                        col = manifest.columns[n]
                        out[n].extend(col[r] for r in rows)
            return out
    return _select_by_reading(dataset, names)


def _select_by_reading(dataset: Any, names: list[str]) -> dict[str, list[Any]]:
    if KEY in names:
        raise InvalidArgumentError(
            "select('__key__') needs manifests on every shard (run `atdata manifest build`)"
        )
    out: dict[str, list[Any]] = {n: [] for n in names}
    samples: Iterable[Any] = dataset.ordered()
    for sample in samples:
        get = sample_getter(sample)
        for n in names:
            out[n].append(get(n))
    return out


def to_arrow(dataset: Any, fields: Sequence[str]) -> Any:
    """``select(fields)`` as a ``pyarrow.Table`` (needs ``atdata[arrow]``)."""
    pa = require("pyarrow", "arrow")
    columns = select_columns(dataset, fields)
    return pa.table(columns)
