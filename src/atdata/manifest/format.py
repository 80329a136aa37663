"""The manifest sidecar ``<shard>.manifest``: per-field statistics and a columnar block.

One msgpack map::

    {"format": "atdata.manifest", "version": 1,
     "shard": {"sha256": hex, "size": int, "count": int},
     "fields": {name: {"kind": "int"|"float"|"bool"|"str", "count": n, "nulls": n,
                       "min": v, "max": v, "distinct": n,
                       "values": {v: n} | None,      # exact counts up to VALUE_BOUND distinct
                       "top": [[v, n], ...],         # the most frequent values
                       "bloom": {"m","k","bits"} | None}},   # membership beyond the bound
     "columns": {name: [v, ...]},                   # one value per sample, storage order
     "positions": [member number, ...]}             # row i describes member positions[i]

A manifest names the sha256 and size of the shard it describes; readers use it only when those
match what the shard's record (or its offset index) says, and only when its positions are the
members ``0..count-1`` of that offset index. Anything else is ignored, never trusted.
"""

from typing import Any

import msgpack
import numpy as np

from ..errors import ShardError
from .bloom import Bloom
from .fields import SCALAR_KINDS, FieldKind

__all__ = ["MANIFEST_SUFFIX", "MAX_MANIFEST_BYTES", "FieldStats", "Manifest"]

MANIFEST_SUFFIX = ".manifest"
_FORMAT = "atdata.manifest"
_VERSION = 1
#: Hard cap on a manifest's size: a larger one is not read.
MAX_MANIFEST_BYTES = 256 << 20
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "str": (str,),
}


class FieldStats:
    """What a manifest says about one field of one shard.

    Read from a manifest, the value counts, top values and Bloom filter are checked and decoded
    only when first used (most queries need the range alone); a malformed part then reads as
    absent (``values``: ShardError, since exact counts are trusted to rule shards out).
    """

    def __init__(
        self,
        kind: FieldKind,
        count: int,
        nulls: int,
        *,
        min: Any = None,
        max: Any = None,
        distinct: int = 0,
        values: dict[Any, int] | None = None,
        top: list[tuple[Any, int]] | None = None,
        bloom: Bloom | None = None,
    ) -> None:
        self.kind = kind
        self.count = count
        self.nulls = nulls
        self.min = min
        self.max = max
        self.distinct = distinct
        self._values = values
        self._top = [] if top is None else top
        self._bloom = bloom
        self._raw: dict[str, Any] | None = None  # undecoded parts (see from_dict)
        self._where = ""

    def _take(self, name: str) -> Any:
        raw = self._raw
        return None if raw is None else raw.pop(name, None)

    @property
    def values(self) -> dict[Any, int] | None:
        """Exact value counts (None beyond the bound)."""
        if self._raw is not None and "values" in self._raw:
            raw, counts = self._take("values"), self._take("counts")
            if raw is not None:
                if not (
                    isinstance(raw, list)
                    and isinstance(counts, list)
                    and len(raw) == len(counts)
                    and set(map(type, counts)) <= {int}
                    and all_of_kind(self.kind, raw, nullable=False)
                ):
                    raise ShardError(f"manifest {self._where}: bad value counts")
                self._values = dict(zip(raw, counts, strict=True))
        return self._values

    @property
    def top(self) -> list[tuple[Any, int]]:
        """The most frequent values, with their counts."""
        if self._raw is not None and "top" in self._raw:
            kind = self.kind
            self._top = [
                (p[0], p[1])
                for p in self._take("top") or []
                if isinstance(p, list)
                and len(p) == 2
                and _fits(kind, p[0])
                and isinstance(p[1], int)
            ]
        return self._top

    @property
    def bloom(self) -> Bloom | None:
        """Set membership beyond the bound (None: not kept, or malformed)."""
        if self._raw is not None and "bloom" in self._raw:
            self._bloom = Bloom.from_dict(self._take("bloom"))
        return self._bloom

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "nulls": self.nulls,
            "min": self.min,
            "max": self.max,
            "distinct": self.distinct,
            "values": None if self.values is None else list(self.values),
            "counts": None if self.values is None else list(self.values.values()),
            "top": [list(t) for t in self.top],
            "bloom": None if self.bloom is None else self.bloom.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "FieldStats":
        if not isinstance(data, dict) or data.get("kind") not in SCALAR_KINDS:
            raise ShardError(f"manifest {where}: a field summary without a known kind")
        kind = data["kind"]
        count, nulls = data.get("count"), data.get("nulls")
        if not (isinstance(count, int) and isinstance(nulls, int) and 0 <= nulls <= count):
            raise ShardError(f"manifest {where}: bad count/nulls in a field summary")
        lo, hi = data.get("min"), data.get("max")
        for v in (lo, hi):
            if v is not None and not _fits(kind, v):
                raise ShardError(f"manifest {where}: a {kind} field has a range of another type")
        distinct = data.get("distinct")
        stats = cls(
            kind,
            count,
            nulls,
            min=lo,
            max=hi,
            distinct=distinct if isinstance(distinct, int) else 0,
        )
        stats._raw = {k: data.get(k) for k in ("values", "counts", "top", "bloom")}
        stats._where = where
        stats.values  # noqa: B018 - exact counts are checked when the manifest is read
        return stats


_ALLOWED: dict[str, set[type]] = {
    "int": {int},
    "float": {float, int},
    "bool": {bool},
    "str": {str},
}


def all_of_kind(kind: str, values: list[Any], *, nullable: bool = True) -> bool:
    """Whether every value is of ``kind`` (or None when ``nullable``), checked at C speed."""
    allowed = _ALLOWED[kind] | ({type(None)} if nullable else set())
    return set(map(type, values)) <= allowed


def _fits(kind: str, value: Any) -> bool:
    if kind != "bool" and type(value) is bool:
        return False
    return isinstance(value, _TYPES[kind])


class Manifest:
    """The decoded manifest of one shard (see the module docstring).

    The header (shard, field statistics) is decoded and checked when the manifest is read; the
    column block only when :attr:`columns` or :attr:`positions` is first used (a query that the
    statistics answer never decodes it). A malformed column block raises ShardError then.
    """

    def __init__(
        self,
        shard_sha256: str,
        shard_size: int,
        count: int,
        fields: dict[str, FieldStats],
        *,
        columns: dict[str, list[Any]] | None = None,
        positions: "np.ndarray[Any, np.dtype[np.int64]] | None" = None,
        block: bytes | memoryview | None = None,
        where: str = "manifest",
    ) -> None:
        self.shard_sha256 = shard_sha256
        self.shard_size = shard_size
        self.count = count
        self.fields = fields
        self._columns = columns
        self._positions = positions
        self._block = block
        self._where = where

    @property
    def columns(self) -> dict[str, list[Any]]:
        """Every field's column (the column block decoded and checked on first use)."""
        if self._columns is None or len(self._columns) < len(self.fields):
            self._decode_block(None)
        assert self._columns is not None
        return self._columns

    def columns_of(self, names: "set[str] | frozenset[str]") -> dict[str, list[Any]]:
        """The columns of ``names`` (fields of this manifest): only those are decoded."""
        held = self._columns or {}
        missing = {n for n in names if n not in held}
        if missing or self._positions is None:
            self._decode_block(missing)
        assert self._columns is not None
        return {n: self._columns[n] for n in names}

    @property
    def positions(self) -> "np.ndarray[Any, np.dtype[np.int64]]":
        if self._positions is None:
            self._decode_block(set())
        assert self._positions is not None
        return self._positions

    def to_bytes(self) -> bytes:
        header = {
            "format": _FORMAT,
            "version": _VERSION,
            "shard": {"sha256": self.shard_sha256, "size": self.shard_size, "count": self.count},
            "fields": {name: s.to_dict() for name, s in self.fields.items()},
        }
        block = {"columns": self.columns, "positions": self.positions.tolist()}
        out: bytes = msgpack.packb(header, use_bin_type=True) + msgpack.packb(
            block, use_bin_type=True
        )
        return out

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "Manifest":
        """Decode and check the header (ShardError naming ``where`` when malformed)."""
        if len(data) > MAX_MANIFEST_BYTES:
            raise ShardError(f"manifest {where} is larger than {MAX_MANIFEST_BYTES} bytes")
        unpacker = msgpack.Unpacker(
            raw=False, strict_map_key=False, max_buffer_size=max(len(data), 1)
        )
        unpacker.feed(data)
        try:
            raw = unpacker.unpack()
        except Exception as exc:
            raise ShardError(f"manifest {where} is not valid msgpack: {exc}") from None
        block = memoryview(data)[unpacker.tell() :]
        if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
            raise ShardError(f"{where} is not an atdata manifest")
        if raw.get("version") != _VERSION:
            raise ShardError(f"manifest {where} has unknown version {raw.get('version')!r}")
        shard = raw.get("shard")
        if not isinstance(shard, dict):
            raise ShardError(f"manifest {where} names no shard")
        sha, size, count = shard.get("sha256"), shard.get("size"), shard.get("count")
        if not (isinstance(sha, str) and isinstance(size, int) and isinstance(count, int)):
            raise ShardError(f"manifest {where} names its shard without sha256, size and count")
        if count < 0 or size < 0:
            raise ShardError(f"manifest {where}: negative shard size or count")
        fields_raw = raw.get("fields")
        if not isinstance(fields_raw, dict):
            raise ShardError(f"manifest {where} has no fields")
        fields: dict[str, FieldStats] = {}
        for name, summary in fields_raw.items():
            if not isinstance(name, str):
                raise ShardError(f"manifest {where}: a field name is not a string")
            stats = FieldStats.from_dict(summary, f"{where} field $.{name}")
            if stats.count != count:
                raise ShardError(f"manifest {where}: the summary of $.{name} counts {stats.count}")
            fields[name] = stats
        return cls(sha.lower(), size, count, fields, block=block, where=where)

    def _decode_block(self, names: set[str] | None) -> None:
        """Decode and check the positions and the columns of ``names`` (None: all); the other
        columns are skipped over, not decoded."""
        where, count = self._where, self.count
        wanted = set(self.fields) if names is None else names & self.fields.keys()
        positions: Any = None
        columns_raw: dict[Any, Any] | None = None
        try:
            unpacker = msgpack.Unpacker(
                raw=False, strict_map_key=False, max_buffer_size=max(len(self._block or b""), 1)
            )
            unpacker.feed(self._block or b"")
            for _ in range(unpacker.read_map_header()):
                key = unpacker.unpack()
                if key == "positions" and self._positions is None:
                    positions = unpacker.unpack()
                elif key == "columns":
                    columns_raw = {}
                    for _ in range(unpacker.read_map_header()):
                        name = unpacker.unpack()
                        if isinstance(name, str) and name in wanted:
                            columns_raw[name] = unpacker.unpack()
                        else:
                            unpacker.skip()
                else:
                    unpacker.skip()
        except Exception as exc:
            raise ShardError(
                f"manifest {where}: the column block is not valid msgpack: {exc}"
            ) from None
        pos = self._positions
        if pos is None:
            if not isinstance(positions, list) or len(positions) != count:
                raise ShardError(f"manifest {where}: {count} samples but not as many positions")
            if not set(map(type, positions)) <= {int}:
                raise ShardError(f"manifest {where}: a position is not an integer")
            pos = np.asarray(positions, dtype=np.int64) if positions else np.zeros(0, np.int64)
            if not np.array_equal(pos, np.arange(count, dtype=np.int64)):
                raise ShardError(
                    f"manifest {where}: its positions are not the members 0..{count - 1} of "
                    "the shard"
                )
        if columns_raw is None:
            raise ShardError(f"manifest {where} has no columns")
        columns: dict[str, list[Any]] = dict(self._columns or {})
        for name in wanted:
            stats = self.fields[name]
            column = columns_raw.get(name)
            if not isinstance(column, list) or len(column) != count:
                raise ShardError(f"manifest {where}: column $.{name} does not hold {count} values")
            if not all_of_kind(stats.kind, column):
                raise ShardError(
                    f"manifest {where}: column $.{name} holds a value that is not {stats.kind}"
                )
            columns[name] = column
        self._columns, self._positions = columns, pos
