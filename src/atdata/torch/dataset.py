"""``TorchDataset``: a dataset's plan as a ``torch.utils.data.IterableDataset`` of batches.

Every rank and every DataLoader worker computes the same epoch order (a pure function of the
shards' offset indexes, the seed and the epoch, see :mod:`atdata.plan`) and reads only its own
batches of it, by position: rank ``r`` takes the ``r``-th batch of every step of
``world_size * batch_size`` positions and its ``j``-th batch is read by worker
``j % num_workers``, so the DataLoader's round robin yields whole batches in order. The epoch, the
resume position and the epoch's length sit in a small shared array that workers read when an
epoch starts, so ``set_epoch`` and ``load_state_dict`` reach persistent workers.
"""

import multiprocessing
import os
import sys
from collections.abc import Iterator
from multiprocessing.context import get_spawning_popen
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..batch import SampleBatch
from ..plan import EpochOrder, Layout, PlanError, make_layout
from ..planreader import PlanReader, Readable, epoch_order
from ._ring import SlotRing, new_control

__all__ = ["TorchDataset", "resolve_world", "to_tensors"]

STATE_VERSION = 1
KEY_FIELD = "__key__"
_EPOCH, _START, _TOTAL = 0, 1, 2
# settings that change the epoch's order: a state saved under others cannot resume exactly
_ORDER_SETTINGS = ("shuffle", "seed", "resample", "buffer_size", "buffer_bytes", "samples")


def resolve_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world size): explicit arguments, else torch.distributed, else RANK/WORLD_SIZE."""
    if rank is None and world_size is None:
        dist = sys.modules.get("torch.distributed")
        if dist is not None and dist.is_available() and dist.is_initialized():
            rank, world_size = int(dist.get_rank()), int(dist.get_world_size())
        elif "WORLD_SIZE" in os.environ:
            world_size = int(os.environ["WORLD_SIZE"])
            rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    rank = 0 if rank is None else int(rank)
    world_size = 1 if world_size is None else int(world_size)
    if not 0 <= rank < world_size:
        raise PlanError(f"rank {rank} is not in [0, world_size={world_size})")
    return rank, world_size


def shared_empty(shape: tuple[int, ...], dtype: "np.dtype[Any]") -> "np.ndarray[Any, Any]":
    """A new, uninitialised array in torch shared memory (plain numpy for a dtype torch lacks).

    Used for the batch arrays a DataLoader worker builds: the tensor over it (see
    :func:`to_tensors`) leaves the worker by handle, where an ordinary array's batch would be
    copied into a new shared-memory segment by torch first. Each call makes a new segment; none
    is ever written again once handed out, so a batch the training loop keeps never changes.
    """
    try:
        tdtype = torch.from_numpy(np.empty(0, dtype)).dtype
    except (TypeError, ValueError):
        return np.empty(shape, dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    new_shared: Any = torch.UntypedStorage._new_shared  # what torch's default_collate uses
    storage = new_shared(max(nbytes, 1))
    flat = torch.empty(0, dtype=torch.uint8).set_(storage)[:nbytes]
    return flat.view(tdtype).reshape(shape).numpy()


def _writable(a: "np.ndarray[Any, Any]") -> "torch.Tensor":
    base = a.base
    if (
        isinstance(base, torch.Tensor)
        and base.is_shared()
        and tuple(base.shape) == a.shape
        and base.data_ptr() == a.ctypes.data
        and a.flags.c_contiguous
        and base.is_contiguous()
        and a.flags.writeable
    ):
        return base  # made by shared_empty: the same memory, already shareable by handle
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def to_tensors(batch: Any, names: tuple[str, ...] = ()) -> dict[str, Any]:
    """A batch as a dict: array columns as tensors (zero copy), numeric scalars as 1-d tensors,
    everything else as lists, and the sample keys under ``"__key__"``. No batch (every sample
    filtered out or skipped) gives empty lists under ``names``."""
    if batch is None:
        return {**{name: [] for name in names}, KEY_FIELD: []}
    if not isinstance(batch, SampleBatch):
        return {KEY_FIELD: [], "samples": list(batch)}
    out: dict[str, Any] = {}
    for name, col in batch.columns.items():
        if isinstance(col, np.ndarray):
            out[name] = _writable(col)
            continue
        kinds = set(map(type, col))
        try:
            if kinds == {int}:
                out[name] = torch.tensor(col, dtype=torch.int64)
            elif kinds and kinds <= {int, float}:
                out[name] = torch.tensor(col, dtype=torch.get_default_dtype())
            elif kinds == {bool}:
                out[name] = torch.tensor(col, dtype=torch.bool)
            elif kinds and kinds <= {np.ndarray, type(None)}:
                out[name] = [None if a is None else _writable(a) for a in col]
            else:
                out[name] = list(col)
        except (OverflowError, RuntimeError, TypeError):
            out[name] = list(col)
    out[KEY_FIELD] = list(batch.keys)
    return out


class TorchDataset(IterableDataset[dict[str, Any]]):
    """Batches of a dataset for ``torch.utils.data.DataLoader(tds, batch_size=None, ...)``.

    Made by :meth:`atdata.Dataset.to_torch`; see there for the arguments. ``len()`` is the number
    of batches this rank yields in the current epoch (from where a loaded state resumes).
    """

    def __init__(
        self,
        dataset: Readable,
        batch_size: int = 64,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = True,
        uneven: Literal["drop", "pad"] = "drop",
        epoch_length: int | None = None,
        resample: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        buffer_size: int = 10_000,
        buffer_bytes: int = 1 << 30,
        epoch: int = 0,
    ) -> None:
        if batch_size < 1:
            raise PlanError("batch_size must be at least 1")
        if uneven not in ("drop", "pad"):
            raise PlanError(f"uneven must be 'drop' or 'pad', not {uneven!r}")
        if epoch_length is not None and epoch_length < 1:
            raise PlanError("epoch_length must be at least 1 batch")
        if buffer_size < 1 or buffer_bytes < 1:
            raise PlanError("buffer_size and buffer_bytes must be at least 1")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.uneven: Literal["drop", "pad"] = uneven
        self.epoch_length = epoch_length
        self.resample = resample
        self.rank, self.world_size = resolve_world(rank, world_size)
        self.buffer_size = buffer_size
        self.buffer_bytes = buffer_bytes
        self._shared: Any = multiprocessing.RawArray("q", [epoch, 0, -1])
        # the workers' shared-memory slots for batches; see atdata.torch._ring
        self._ring_token, self._ring_control = new_control()
        self._ring: SlotRing | None = None
        self._consumed = 0  # batches handed out by an in-process iteration
        self._finished = False  # that iteration reached the end of the epoch
        self._reader: PlanReader | None = None
        self._orders: dict[tuple[int, int], EpochOrder] = {}
        PlanReader(dataset)  # fail now (not in a worker) if the dataset cannot be read this way

    # -- pickling (spawn-started workers) ----------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_reader"] = None
        state["_orders"] = {}
        state["_ring"] = None
        if get_spawning_popen() is None:  # not handing over to a child: shared memory cannot go
            state["_shared"] = list(self._shared)
            state["_ring_control"] = None  # a copy elsewhere allocates fresh segments
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["_shared"], list):
            state["_shared"] = multiprocessing.RawArray("q", state["_shared"])
        self.__dict__.update(state)

    # -- epochs and state -------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return int(self._shared[_EPOCH])

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch (it changes the shuffle); a loaded state for the same epoch is kept."""
        if int(epoch) != self.epoch:
            self._shared[_EPOCH] = int(epoch)
            self._shared[_START] = 0
            self._shared[_TOTAL] = -1
        self._consumed = 0
        self._finished = False

    def _order(self, epoch: int, total: int) -> EpochOrder:
        found = self._orders.get((epoch, total))
        if found is not None:
            return found
        length: int | None = None
        if total >= 0:
            length = total
        elif self.epoch_length is not None:
            length = self.epoch_length * self.world_size * self.batch_size
        order = epoch_order(
            self.dataset,
            seed=self.seed if (self.shuffle or self.resample) else None,
            epoch=epoch,
            window=self.buffer_size,
            window_bytes=self.buffer_bytes,
            length=length,
            resample=self.resample,
        )
        if length is None and order.total != order.stored:  # pragma: no cover - defensive
            raise PlanError("inconsistent epoch order")
        self._orders = {(epoch, total): order}
        return order

    def plan(self) -> tuple[EpochOrder, Layout]:
        """The current epoch's order and this world's layout of it (from the resume position)."""
        epoch, start, total = (int(v) for v in self._shared)
        order = self._order(epoch, total)
        layout = make_layout(
            start,
            order.total,
            world_size=self.world_size,
            batch_size=self.batch_size,
            drop_last=self.drop_last,
            uneven=self.uneven,
        )
        return order, layout

    def __len__(self) -> int:
        return self.plan()[1].rank_batches

    def state_for(self, consumed: int) -> dict[str, Any]:
        """The state once this rank (and every other) has consumed ``consumed`` batches."""
        order, layout = self.plan()
        return {
            "version": STATE_VERSION,
            "epoch": self.epoch,
            "position": layout.position_after(consumed),
            "total": order.total,
            "samples": order.stored,
            "world_size": self.world_size,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "seed": self.seed,
            "resample": self.resample,
            "epoch_length": self.epoch_length,
            "uneven": self.uneven,
            "drop_last": self.drop_last,
            "buffer_size": self.buffer_size,
            "buffer_bytes": self.buffer_bytes,
        }

    def state_dict(self) -> dict[str, Any]:
        """The exact position, counting the batches an in-process iteration handed out (use
        :func:`atdata.torch.loader`'s ``state_dict`` with DataLoader workers)."""
        return self.state_for(self._consumed)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume where ``state`` was taken (any world size or batch size; same order settings)."""
        if state.get("version") != STATE_VERSION:
            raise PlanError(f"unsupported torch dataset state version {state.get('version')!r}")
        mine = self.state_for(0)
        for name in _ORDER_SETTINGS:
            if state.get(name) != mine[name]:
                raise PlanError(
                    f"cannot resume exactly: the saved state has {name}={state.get(name)!r} "
                    f"but this dataset has {name}={mine[name]!r}, so the epoch's order differs; "
                    "use the same settings (and the same shards) as the run that saved it"
                )
        self._shared[_EPOCH] = int(state["epoch"])
        self._shared[_START] = int(state["position"])
        self._shared[_TOTAL] = int(state["total"])
        self._consumed = 0
        self._finished = False

    def restart_epoch(self) -> None:
        """Forget the resume position: the next iteration reads the epoch from its start."""
        self._shared[_START] = 0
        self._shared[_TOTAL] = -1

    # -- iteration ----------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        order, layout = self.plan()
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (int(info.id), int(info.num_workers))
        if self._reader is None:
            self._reader = PlanReader(self.dataset)
        reader = self._reader
        ring = None
        if info is not None:  # batches leave this worker through shared memory: build them there
            ring = self._worker_ring(worker)
            reader.use_allocator(ring.empty if ring is not None else shared_empty)
        names = tuple(reader.output_names)
        if info is None:
            if self._finished:  # the last iteration read this epoch to its end: start afresh
                self.restart_epoch()
                order, layout = self.plan()
            self._consumed = 0
            self._finished = False
        for j in range(worker, layout.rank_batches, workers):
            batch = to_tensors(reader.batch(order, layout.positions(self.rank, j)), names)
            if ring is not None:
                batch = ring.claim(batch)
            if info is None:
                self._consumed = j + 1
            yield batch
        if info is None:
            self._finished = True

    def _worker_ring(self, worker: int) -> SlotRing | None:
        """This worker's slot ring; none (a fresh segment per batch) with ``$ATDATA_WORKER_SLOTS=0``
        or in a copy of the dataset not handed over at worker start."""
        if self._ring_control is None or os.environ.get("ATDATA_WORKER_SLOTS", "").strip() == "0":
            return None
        if self._ring is None:
            self._ring = SlotRing(self._ring_control, self._ring_token, worker)
        return self._ring

    def __repr__(self) -> str:
        mode = "resampled" if self.resample else ("shuffled" if self.shuffle else "ordered")
        return (
            f"TorchDataset({self.dataset!r}, {mode}, batch_size={self.batch_size}, "
            f"rank={self.rank}/{self.world_size}, epoch={self.epoch})"
        )
