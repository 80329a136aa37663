"""The feed's plan: which samples each rank's batch ``b`` holds, as a pure function of indices.

One epoch is a permutation of the dataset's global sample indices (storage order when not
shuffled; a permutation seeded by ``(seed, epoch)`` otherwise). The epoch is consumed in *global
steps* of ``world_size * batch_size`` samples: in step ``s`` rank ``r`` takes the ``r``-th slice
of ``batch_size``. A position is therefore one number, the samples consumed by all ranks
together, and it means the same thing in any world size: resuming with another world size splits
the rest of the permutation over the new ranks, each sample exactly once.

The tail (fewer than ``world_size * batch_size`` samples left) is dropped with ``drop_last``;
otherwise it is split over the ranks into one last, shorter batch each (sizes differ by at most
one), and ranks left without a sample repeat the epoch's first samples so that every rank still
gets the same number of batches (DistributedSampler's padding).
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FeedPlan", "epoch_order"]

Indices = "np.ndarray[Any, np.dtype[np.int64]]"


def epoch_order(total: int, *, shuffle: bool, seed: int, epoch: int) -> "np.ndarray[Any, Any]":
    """Global sample indices of one epoch, in delivery order."""
    if not shuffle:
        return np.arange(total, dtype=np.int64)
    rng = np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, epoch, 0xFEED])
    return rng.permutation(total).astype(np.int64, copy=False)


@dataclass(frozen=True)
class FeedPlan:
    """This rank's batches from global position ``start`` of an epoch's ``order``."""

    order: "np.ndarray[Any, Any]"
    batch_size: int
    rank: int
    world_size: int
    start: int  # samples of the epoch consumed (by all ranks together) before this plan
    drop_last: bool

    @property
    def step(self) -> int:
        return self.batch_size * self.world_size

    @property
    def full_steps(self) -> int:
        return max(0, len(self.order) - self.start) // self.step

    @property
    def tail(self) -> int:
        """Samples left after the full steps (0 <= tail < step)."""
        return max(0, len(self.order) - self.start) - self.full_steps * self.step

    def __len__(self) -> int:
        """Batches this rank gets (the same on every rank)."""
        return self.full_steps + (1 if self.tail and not self.drop_last else 0)

    def batch(self, b: int) -> "np.ndarray[Any, Any]":
        """Global sample indices of this rank's batch ``b`` (0-based from ``start``)."""
        if not 0 <= b < len(self):
            raise IndexError(f"batch {b} out of range for {len(self)} batches")
        if b < self.full_steps:
            lo = self.start + b * self.step + self.rank * self.batch_size
            return self.order[lo : lo + self.batch_size]
        tail_start = self.start + self.full_steps * self.step
        share, extra = divmod(self.tail, self.world_size)
        lo = tail_start + self.rank * share + min(self.rank, extra)
        count = share + (1 if self.rank < extra else 0)
        out = self.order[lo : lo + count]
        if count < -(-self.tail // self.world_size):
            out = np.concatenate([out, self.order[:1]])  # pad: repeat the epoch's first sample
        return out

    def position_after(self, batches: int) -> int:
        """Global position (samples consumed by all ranks) once every rank took ``batches``."""
        if batches >= len(self):
            return len(self.order)
        return self.start + batches * self.step
