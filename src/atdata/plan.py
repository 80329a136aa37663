"""Iteration plans as pure functions of (shards, seed, epoch, worker, workers, rank, world size).

Every consumer (a data-loader worker on a distributed rank) computes the same global order from
the same inputs and takes its own share of it, so that workers, ranks and mid-epoch resume need no
coordination. Shards are split between consumers when there are at least as many shards as
consumers; otherwise every consumer reads every shard and keeps every n-th sample.
"""

import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .errors import AtdataError, InvalidArgumentError

__all__ = [
    "Consumer",
    "EpochOrder",
    "Layout",
    "PassOrder",
    "Plan",
    "PlanError",
    "current_consumer",
    "make_layout",
    "make_plan",
]


class PlanError(AtdataError, ValueError):
    """A reading plan that cannot be made or resumed exactly (it would drop or repeat samples)."""


@dataclass(frozen=True)
class Consumer:
    """Who is reading: a data-loader worker on a distributed rank."""

    worker: int = 0
    num_workers: int = 1
    rank: int = 0
    world_size: int = 1

    @property
    def index(self) -> int:
        return self.rank * self.num_workers + self.worker

    @property
    def count(self) -> int:
        return self.world_size * self.num_workers


@dataclass(frozen=True)
class Plan:
    """Which shards to read, in which order, and which samples of them to keep."""

    shards: tuple[int, ...]
    sample_stride: int = 1  # keep samples whose running number % stride == offset
    sample_offset: int = 0
    shuffle_seed: int | None = None  # seed of the sample buffer's generator, None for ordered


def shard_order(num_shards: int, *, seed: int | None, epoch: int) -> list[int]:
    """All shard numbers in reading order: as given, or permuted by (seed, epoch)."""
    order = list(range(num_shards))
    if seed is not None:
        random.Random(f"atdata-shards:{seed}:{epoch}").shuffle(order)
    return order


def make_plan(
    num_shards: int, *, seed: int | None = None, epoch: int = 0, consumer: Consumer = Consumer()
) -> Plan:
    """The plan of one consumer; a pure function of its arguments."""
    if not (
        0 <= consumer.worker < consumer.num_workers and 0 <= consumer.rank < consumer.world_size
    ):
        raise InvalidArgumentError(f"inconsistent consumer {consumer}")
    order = shard_order(num_shards, seed=seed, epoch=epoch)
    buffer_seed = None if seed is None else hash_seed(seed, epoch, consumer.index)
    n, i = consumer.count, consumer.index
    if n == 1:
        return Plan(tuple(order), shuffle_seed=buffer_seed)
    if num_shards >= n:
        return Plan(tuple(order[i::n]), shuffle_seed=buffer_seed)
    return Plan(tuple(order), sample_stride=n, sample_offset=i, shuffle_seed=buffer_seed)


def hash_seed(*parts: int) -> int:
    """A stable 64-bit seed from integers (Python's hash() is salted per process for str)."""
    return random.Random(":".join(map(str, parts))).getrandbits(64)


def current_consumer(rank: int = 0, world_size: int = 1) -> Consumer:
    """This process's consumer: the torch DataLoader worker (if any) on the given rank.

    torch is never imported here; a worker is detected only when torch is already loaded.
    """
    torch = sys.modules.get("torch")
    worker, num_workers = 0, 1
    if torch is not None:
        info = torch.utils.data.get_worker_info()
        if info is not None:
            worker, num_workers = int(info.id), int(info.num_workers)
    return Consumer(worker=worker, num_workers=num_workers, rank=rank, world_size=world_size)


# -- global orders and their layout over ranks and workers ------------------------------------------
#
# An epoch's samples are a sequence of *positions* 0..total-1. Where position p comes from is a
# pure function of the shards' sample counts (and body sizes), the seed and the epoch, computed
# without reading any shard. Positions are handed out in steps of world_size * batch_size; rank r
# takes the r-th batch of every step and gives its j-th batch to worker j % num_workers, so a
# DataLoader's round robin over its workers yields a rank's batches in order, and "position" is
# a single number that every rank agrees on after the same number of steps.

Uneven = Literal["drop", "pad", "spread"]
_DRAW_BLOCK = 4096


def _rng(*parts: int) -> "np.random.Generator":
    return np.random.default_rng(hash_seed(*parts))


class PassOrder:
    """One pass over every stored sample: storage order, or a two-level shuffle.

    Shuffled: the shards are permuted by (seed, epoch), their samples concatenated, the
    concatenation cut into windows of at most ``window`` samples and ``window_bytes`` bytes of
    bodies (at least one sample), and each window permuted by (seed, epoch, window number).
    Position -> (shard, member) is a binary search and one lookup in a cached permutation.
    """

    def __init__(
        self,
        counts: Sequence[int],
        sizes: Callable[[int], "np.ndarray[Any, Any]"] | None = None,
        *,
        seed: int | None = None,
        epoch: int = 0,
        window: int = 10_000,
        window_bytes: int = 1 << 30,
    ) -> None:
        self.counts = tuple(int(c) for c in counts)
        self.total = sum(self.counts)
        self.seed = seed
        self.epoch = epoch
        self._perm_cache: dict[int, np.ndarray[Any, Any]] = {}
        if seed is None:
            self.shards = np.arange(len(self.counts))
        else:
            self.shards = np.asarray(shard_order(len(self.counts), seed=seed, epoch=epoch))
        ordered_counts = np.asarray([self.counts[i] for i in self.shards], dtype=np.int64)
        self._cum = np.concatenate([[0], np.cumsum(ordered_counts)]).astype(np.int64)
        self.bounds = np.asarray([0, self.total], dtype=np.int64)
        if seed is not None and self.total:
            self.bounds = _windows(self, sizes, max(1, window), max(1, window_bytes))

    def locate(
        self, positions: "np.ndarray[Any, Any]"
    ) -> tuple["np.ndarray[Any, Any]", "np.ndarray[Any, Any]"]:
        """(shard numbers, member numbers) of ``positions`` (each in ``[0, total)``)."""
        q = np.asarray(positions, dtype=np.int64)
        if self.seed is not None and len(q):
            first = int(np.searchsorted(self.bounds, q[0], side="right")) - 1
            start, stop = int(self.bounds[first]), int(self.bounds[first + 1])
            if int(q[-1]) - int(q[0]) == len(q) - 1 and int(q[-1]) < stop:  # a run in one window
                a = int(q[0]) - start
                q = start + self._perm(first)[a : a + len(q)]
            else:
                q = self._scattered(q)
        slot = np.searchsorted(self._cum, q, side="right") - 1
        return self.shards[slot], q - self._cum[slot]

    def _scattered(self, q: "np.ndarray[Any, Any]") -> "np.ndarray[Any, Any]":
        w = np.searchsorted(self.bounds, q, side="right") - 1
        out = np.empty_like(q)
        for win in np.unique(w):
            sel = w == win
            start = int(self.bounds[win])
            out[sel] = start + self._perm(int(win))[q[sel] - start]
        return out

    def _perm(self, win: int) -> "np.ndarray[Any, Any]":
        perm = self._perm_cache.get(win)
        if perm is None:
            n = int(self.bounds[win + 1] - self.bounds[win])
            perm = _rng(self.seed or 0, self.epoch, win, 1).permutation(n)
            if len(self._perm_cache) >= 4:
                self._perm_cache.pop(next(iter(self._perm_cache)))
            self._perm_cache[win] = perm
        return perm


def _windows(
    order: PassOrder,
    sizes: Callable[[int], "np.ndarray[Any, Any]"] | None,
    window: int,
    window_bytes: int,
) -> "np.ndarray[Any, Any]":
    total = order.total
    if sizes is None:
        return np.asarray([*range(0, total, window), total], dtype=np.int64)
    body = np.concatenate([np.asarray(sizes(int(i)), dtype=np.int64) for i in order.shards])
    cum_bytes = np.concatenate([[0], np.cumsum(body)])
    bounds = [0]
    a = 0
    while a < total:
        limit = int(np.searchsorted(cum_bytes, cum_bytes[a] + window_bytes, side="right")) - 1
        b = max(a + 1, min(a + window, total, limit))
        bounds.append(b)
        a = b
    return np.asarray(bounds, dtype=np.int64)


@dataclass(frozen=True)
class Layout:
    """How the positions ``[start, end)`` of an epoch are split into batches over ranks.

    ``steps`` full steps of ``world_size * batch_size`` positions, then (maybe) one last batch per
    rank of ``last`` positions (``last_sizes`` per rank for the "spread" policy). Positions at or
    past ``wrap`` (the epoch's real end) repeat the epoch from its first position ("pad").
    """

    start: int
    end: int  # the position reached once every batch is consumed
    world_size: int
    batch_size: int
    steps: int
    last_sizes: tuple[int, ...]  # per rank; all 0 when there is no last batch
    wrap: int

    @property
    def rank_batches(self) -> int:
        return self.steps + (1 if any(self.last_sizes) else 0)

    def batch_range(self, rank: int, j: int) -> tuple[int, int]:
        """Positions [a, b) of rank ``rank``'s batch ``j`` (b may pass ``wrap``: padding)."""
        step = self.world_size * self.batch_size
        if j < self.steps:
            a = self.start + j * step + rank * self.batch_size
            return a, a + self.batch_size
        base = self.start + self.steps * step
        a = base + sum(self.last_sizes[:rank])
        return a, a + self.last_sizes[rank]

    def position_after(self, rank_batches_done: int) -> int:
        """The epoch position once every rank has consumed this many of its batches."""
        if rank_batches_done >= self.rank_batches:
            return self.end
        return self.start + rank_batches_done * self.world_size * self.batch_size

    def positions(self, rank: int, j: int) -> "np.ndarray[Any, Any]":
        a, b = self.batch_range(rank, j)
        pos = np.arange(a, b, dtype=np.int64)
        if b > self.wrap:
            pos[pos >= self.wrap] %= max(self.wrap, 1)
        return pos


def make_layout(
    start: int,
    total: int,
    *,
    world_size: int,
    batch_size: int,
    drop_last: bool,
    uneven: Uneven,
) -> Layout:
    """The layout of positions ``[start, total)`` over ``world_size`` ranks (see :class:`Layout`).

    ``uneven`` says what happens to the last ``r < world_size * batch_size`` positions:
    "drop": with ``drop_last`` they are dropped, else every rank gets a short batch of
    ``r // world_size`` and ``r % world_size`` are dropped; "pad": padded from the start of the
    epoch, to a full step (``drop_last``) or to ``world_size * ceil(r / world_size)``; "spread":
    nothing is dropped or padded, ranks' last batches differ by at most one (batch counts may
    differ when r < world_size).
    """
    if uneven not in ("drop", "pad", "spread"):
        raise InvalidArgumentError(f"uneven must be 'drop' or 'pad', not {uneven!r}")
    if batch_size < 1 or world_size < 1:
        raise InvalidArgumentError("batch_size and world_size must be at least 1")
    remaining = max(0, total - start)
    step = world_size * batch_size
    steps, rest = divmod(remaining, step)
    last = [0] * world_size
    if rest:
        if uneven == "pad":
            size = batch_size if drop_last else -(-rest // world_size)
            last = [size] * world_size
        elif uneven == "spread":
            if not drop_last:
                q, extra = divmod(rest, world_size)
                last = [q + (1 if r < extra else 0) for r in range(world_size)]
        elif not drop_last:
            last = [rest // world_size] * world_size
    end = max(start, total)
    return Layout(start, end, world_size, batch_size, steps, tuple(last), wrap=total)


class EpochOrder:
    """Positions of one epoch -> (shard, member): a pass, a window of an endless run of passes
    (``length``, for epochs of a chosen number of batches), or draws with replacement."""

    def __init__(
        self,
        counts: Sequence[int],
        sizes: Callable[[int], "np.ndarray[Any, Any]"] | None = None,
        *,
        seed: int | None = None,
        epoch: int = 0,
        window: int = 10_000,
        window_bytes: int = 1 << 30,
        length: int | None = None,
        resample: bool = False,
    ) -> None:
        self.counts = tuple(int(c) for c in counts)
        self.stored = sum(self.counts)
        self.total = self.stored if length is None else int(length)
        self.epoch = epoch
        self.resample = resample
        self._seed = seed
        self._sizes = sizes
        self._window = (window, window_bytes)
        self._passes: dict[int, PassOrder] = {}
        self._cum = np.concatenate([[0], np.cumsum(np.asarray(self.counts, dtype=np.int64))])
        self._length = length

    def _pass(self, number: int) -> PassOrder:
        order = self._passes.get(number)
        if order is None:
            order = PassOrder(
                self.counts,
                self._sizes,
                seed=self._seed,
                epoch=number,
                window=self._window[0],
                window_bytes=self._window[1],
            )
            if len(self._passes) >= 2:
                self._passes.pop(next(iter(self._passes)))
            self._passes[number] = order
        return order

    def locate(
        self, positions: "np.ndarray[Any, Any]"
    ) -> tuple["np.ndarray[Any, Any]", "np.ndarray[Any, Any]"]:
        """(shard numbers, member numbers) of epoch positions (each in ``[0, total)``)."""
        p = np.asarray(positions, dtype=np.int64)
        if self.stored == 0:
            raise InvalidArgumentError("the dataset has no samples")
        if self.resample:
            seed = self._seed or 0
            flat = np.empty_like(p)
            blocks = p // _DRAW_BLOCK
            for block in np.unique(blocks):
                sel = blocks == block
                draws = _rng(seed, self.epoch, int(block), 2).integers(0, self.stored, _DRAW_BLOCK)
                flat[sel] = draws[p[sel] % _DRAW_BLOCK]
            slot = np.searchsorted(self._cum, flat, side="right") - 1
            return slot, flat - self._cum[slot]
        if self._length is None:
            return self._pass(self.epoch).locate(p)
        virtual = self.epoch * self.total + p
        passes = virtual // self.stored
        shards = np.empty_like(p)
        members = np.empty_like(p)
        for number in np.unique(passes):
            sel = passes == number
            shards[sel], members[sel] = self._pass(int(number)).locate(virtual[sel] % self.stored)
        return shards, members
