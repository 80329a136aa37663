"""Scenarios B1-B4 and their deterministic data (numpy only: shared by every driver).

Every sample carries its running index ``idx`` in a field the readers can see (an ``idx`` field, a
``label``, or the first element of its array), so each reader's output can be checked for
exactly-once delivery: the sorted ids must be exactly ``0..n-1``.
"""

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "int", "str" or a numpy dtype string ("<f4", "<i4", "|u1")
    shape: tuple[int, ...] = ()

    @property
    def is_array(self) -> bool:
        return self.kind not in ("int", "str", "float")


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    fields: tuple[Field, ...]
    samples: int  # full size
    per_shard: int  # full size
    batch: int
    id_field: str  # the field whose value (or first element) is the sample's index
    quick_samples: int  # size under --quick

    def size(self, quick: bool) -> tuple[int, int]:
        """(samples, samples per shard) at full size or under --quick (same shard count)."""
        if not quick:
            return self.samples, self.per_shard
        shards = self.samples // self.per_shard
        return self.quick_samples, max(1, self.quick_samples // shards)

    def shards(self, quick: bool) -> int:
        n, per = self.size(quick)
        return -(-n // per)

    def array_bytes(self) -> int:
        """Bytes of array data in one sample."""
        return (
            sum(
                int(np.prod(f.shape)) * np.dtype(f.kind).itemsize for f in self.fields if f.is_array
            )
            or 1
        )

    def schema_text(self) -> str:
        parts = []
        for f in self.fields:
            kind = {"<f4": "float32", "<i4": "int32", "|u1": "uint8"}.get(f.kind, f.kind)
            dims = "[" + ",".join(map(str, f.shape)) + "]" if f.shape else ""
            parts.append(f"{f.name}:{kind}{dims}")
        return ", ".join(parts)


SCENARIOS: dict[str, Scenario] = {
    s.id: s
    for s in (
        Scenario(
            "B1",
            "tiny records",
            (Field("idx", "int"), Field("name", "str"), Field("vec", "<f4", (64,))),
            1_000_000,
            10_000,
            256,
            "idx",
            100_000,
        ),
        Scenario(
            "B2",
            "token blocks",
            (Field("tokens", "<i4", (2048,)),),
            200_000,
            10_000,
            32,
            "tokens",
            40_000,
        ),
        Scenario(
            "B3",
            "raw images",
            (Field("image", "|u1", (224, 224, 3)), Field("label", "int")),
            20_000,
            1_000,
            64,
            "label",
            4_000,
        ),
        Scenario(
            "B4",
            "large tensors",
            (Field("data", "<f4", (1024, 1024)),),
            500,
            50,
            8,
            "data",
            100,
        ),
    )
}

_CHUNK_SAMPLES = 1024  # samples generated per numpy call, at most
_CHUNK_BYTES = 8 << 20  # ... and at most this many bytes of array data


def _chunk(sc: Scenario, start: int, stop: int) -> dict[str, Any]:
    """Column data for samples [start, stop): a pure function of (scenario, start)."""
    rng = np.random.default_rng([hash_seed(sc.id), start])
    n = stop - start
    ids = np.arange(start, stop, dtype=np.int64)
    cols: dict[str, Any] = {}
    for f in sc.fields:
        if f.kind == "int":
            cols[f.name] = ids.tolist()
        elif f.kind == "str":
            cols[f.name] = [
                f"item-{i:07d}-{int(r):08x}"
                for i, r in zip(ids, rng.integers(0, 2**32, n), strict=True)
            ]
        elif f.kind == "<f4":
            arr = rng.random((n, *f.shape), dtype=np.float32)
            arr.reshape(n, -1)[:, 0] = ids  # exact in float32 below 2**24
            cols[f.name] = arr
        elif f.kind == "<i4":
            arr = rng.integers(0, 50_000, (n, *f.shape), dtype=np.int32)
            arr.reshape(n, -1)[:, 0] = ids
            cols[f.name] = arr
        elif f.kind == "|u1":
            count = n * int(np.prod(f.shape))
            cols[f.name] = np.frombuffer(rng.bytes(count), dtype=np.uint8).reshape(n, *f.shape)
        else:
            raise ValueError(f"unknown field kind {f.kind!r}")
    return cols


def hash_seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def iter_samples(
    sc: Scenario, n: int, make: Callable[..., Any], timer: list[float] | None = None
) -> Iterator[Any]:
    """Yield ``make(**fields)`` for samples 0..n-1.

    When ``timer`` is given, the time spent generating data and building sample objects is
    added to ``timer[0]`` (wall) and, when it has a second slot, its CPU time to ``timer[1]``,
    so that a writer's timing can exclude it.
    """
    import time

    names = [f.name for f in sc.fields]
    clock, cpu_clock = time.perf_counter, time.process_time
    step = max(1, min(_CHUNK_SAMPLES, _CHUNK_BYTES // sc.array_bytes()))
    for start in range(0, n, step):
        t0, c0 = clock(), cpu_clock()
        stop = min(n, start + step)
        cols = _chunk(sc, start, stop)
        columns = [cols[k] for k in names]
        built = [make(**dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]
        if timer is not None:
            timer[0] += clock() - t0
            if len(timer) > 1:
                timer[1] += cpu_clock() - c0
        yield from built


def ids_digest(ids: np.ndarray) -> dict[str, Any]:
    """Exactly-once summary of delivered ids: count, whether they are exactly 0..n-1, digest."""
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    exact = bool(
        len(ids) == 0 or (ids[0] == 0 and ids[-1] == len(ids) - 1 and np.all(np.diff(ids) == 1))
    )
    return {
        "count": len(ids),
        "exact": exact,
        "sha256": hashlib.sha256(ids.astype("<i8").tobytes()).hexdigest()[:16],
    }


def expected_digest(n: int) -> dict[str, Any]:
    return ids_digest(np.arange(n, dtype=np.int64))
