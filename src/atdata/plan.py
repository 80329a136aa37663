"""Iteration plans as pure functions of (shards, seed, epoch, worker, workers, rank, world size).

Every consumer (a data-loader worker on a distributed rank) computes the same global order from
the same inputs and takes its own share of it, so that workers, ranks and mid-epoch resume need no
coordination. Shards are split between consumers when there are at least as many shards as
consumers; otherwise every consumer reads every shard and keeps every n-th sample.
"""

import random
import sys
from dataclasses import dataclass

__all__ = ["Consumer", "Plan", "current_consumer", "make_plan"]


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
        raise ValueError(f"inconsistent consumer {consumer}")
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
