"""The feed's plan: which samples each rank's batch ``b`` holds, as a pure function of indices.

One epoch is a permutation of the dataset's global sample indices (storage order when not
shuffled; a permutation seeded by ``(seed, epoch)`` otherwise). The epoch is consumed in *global
steps* of ``world_size * batch_size`` samples: in step ``s`` rank ``r`` takes the ``r``-th slice
of ``batch_size``. A position is therefore one number, the samples consumed by all ranks
together, and it means the same thing in any world size: resuming with another world size splits
the rest of the permutation over the new ranks, each sample exactly once.

The remainder (fewer than ``world_size * batch_size`` samples left at the end) follows the
torch adapter's policy (see ``TORCH_API.md``): ``uneven="drop"`` drops it (``drop_last``) or gives
every rank one short batch of ``R // W`` samples; ``uneven="pad"`` repeats samples from the start
of the epoch's order, to full batches (``drop_last``) or to one short batch of ``ceil(R / W)``
on every rank. Every rank always gets the same number of batches.
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
    uneven: str = "drop"

    @property
    def step(self) -> int:
        return self.batch_size * self.world_size

    @property
    def full_steps(self) -> int:
        return max(0, len(self.order) - self.start) // self.step

    @property
    def tail_batch(self) -> int:
        """Size of every rank's last, short batch (0: there is none)."""
        rest = max(0, len(self.order) - self.start) - self.full_steps * self.step
        if rest == 0:
            return 0
        if self.uneven == "pad":
            return self.batch_size if self.drop_last else -(-rest // self.world_size)
        return 0 if self.drop_last else rest // self.world_size

    def __len__(self) -> int:
        """Batches this rank gets (the same on every rank)."""
        return self.full_steps + (1 if self.tail_batch else 0)

    def batch(self, b: int) -> "np.ndarray[Any, Any]":
        """Global sample indices of this rank's batch ``b`` (0-based from ``start``)."""
        if not 0 <= b < len(self):
            raise IndexError(f"batch {b} out of range for {len(self)} batches")
        if b < self.full_steps:
            lo = self.start + b * self.step + self.rank * self.batch_size
            return self.order[lo : lo + self.batch_size]
        size = self.tail_batch
        lo = self.start + self.full_steps * self.step + self.rank * size
        positions = np.arange(lo, lo + size) % len(self.order)  # padding wraps to the start
        return self.order[positions]

    def position_after(self, batches: int) -> int:
        """Global position (samples consumed by all ranks) once every rank took ``batches``."""
        if batches >= len(self):
            return len(self.order)
        return self.start + batches * self.step
