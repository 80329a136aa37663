"""Building manifests as samples are written (a :class:`ShardWriter` sidecar builder) or from
samples read back (``atdata manifest build``)."""

import math
from collections import Counter
from typing import Any

import numpy as np

from .bloom import Bloom
from .fields import FieldKind, indexed_fields
from .format import MANIFEST_SUFFIX, FieldStats, Manifest

__all__ = ["VALUE_BOUND", "ManifestBuilder", "summarise"]

#: Exact value counts are kept for fields with at most this many distinct values in a shard;
#: beyond it, the most frequent values and (int/str fields) a Bloom filter.
VALUE_BOUND = 256
_TOP = 10


class ManifestBuilder:
    """Collects the indexed fields of one shard's samples; ``finish`` returns the manifest bytes.

    ``fields`` fixes the fields (name -> kind); by default they are chosen from the first
    sample's type (see :func:`~atdata.manifest.fields.indexed_fields`).
    """

    suffix = MANIFEST_SUFFIX

    def __init__(self, fields: dict[str, FieldKind] | None = None) -> None:
        self._fields = fields
        self._columns: dict[str, list[Any]] = {}
        self._rows = 0

    def add(self, sample: Any) -> None:
        if self._fields is None:
            self._fields = indexed_fields(type(sample), sample)
        if not self._columns:
            self._columns = {name: [None] * self._rows for name in self._fields}
        get = _getter(sample)
        for name, column in self._columns.items():
            column.append(get(name))
        self._rows += 1

    def add_many(self, samples: list[Any]) -> None:
        """``add`` each of ``samples``, all of one type (a writer's chunk)."""
        if not samples:
            return
        first = samples[0]
        if isinstance(first, dict) or type(first).__name__ == "DictSample":
            for sample in samples:
                self.add(sample)
            return
        self.add(first)
        for name, column in self._columns.items():
            column.extend([getattr(sample, name, None) for sample in samples[1:]])
        self._rows += len(samples) - 1

    def add_values(self, row: dict[str, Any]) -> None:
        """One sample given as a mapping of field values (read back from a shard)."""
        self.add(row)

    def finish(self, *, size: int, sha256: str, count: int) -> bytes | None:
        columns, rows = self._columns, self._rows
        self._columns, self._rows = {}, 0
        if rows != count or self._fields is None:
            return None
        manifest = summarise(self._fields, columns, size=size, sha256=sha256, count=count)
        return manifest.to_bytes()


def _getter(sample: Any) -> Any:
    if isinstance(sample, dict):
        return sample.get
    to_dict = getattr(sample, "to_dict", None)
    if type(sample).__name__ == "DictSample" and callable(to_dict):
        return to_dict().get
    return lambda name: getattr(sample, name, None)


def summarise(
    fields: dict[str, FieldKind],
    columns: dict[str, list[Any]],
    *,
    size: int,
    sha256: str,
    count: int,
) -> Manifest:
    """The manifest of a shard whose indexed fields hold ``columns`` (a field whose values are
    not all of its kind, or None, is left out)."""
    stats: dict[str, FieldStats] = {}
    kept: dict[str, list[Any]] = {}
    for name, kind in fields.items():
        column = columns.get(name, [])
        summary = _summary(kind, column)
        if summary is not None:
            stats[name] = summary
            kept[name] = column
    return Manifest(
        sha256, size, count, stats, columns=kept, positions=np.arange(count, dtype=np.int64)
    )


_KIND_TYPES: dict[str, frozenset[type]] = {
    "int": frozenset((int, type(None))),
    "float": frozenset((float, int, type(None))),
    "bool": frozenset((bool, type(None))),
    "str": frozenset((str, type(None))),
}

_NONE_ONLY: frozenset[type] = frozenset((type(None),))


def _summary(kind: FieldKind, column: list[Any]) -> FieldStats | None:
    types = set(map(type, column))  # kind_of_value goes by exact type
    if not types <= _KIND_TYPES.get(kind, _NONE_ONLY):
        return None
    present = [v for v in column if v is not None] if type(None) in types else list(column)
    nulls = len(column) - len(present)
    ordered = (
        [v for v in present if not (isinstance(v, float) and math.isnan(v))]
        if float in types
        else present
    )
    lo = min(ordered) if ordered else None
    hi = max(ordered) if ordered else None
    counts = Counter(present)
    top = counts.most_common(_TOP)
    exact = len(counts) <= VALUE_BOUND
    return FieldStats(
        kind,
        len(column),
        nulls,
        min=lo,
        max=hi,
        distinct=len(counts),
        values=dict(counts) if exact else None,
        top=top,
        bloom=None if exact or kind in ("float", "bool") else Bloom.of(present),
    )
