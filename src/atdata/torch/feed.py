"""``atdata.torch.feed``: batches for the training process without DataLoader worker processes.

A :class:`Feed` runs ``threads`` reader threads inside the training process. Reader ``t`` builds
batches ``t, t + threads, ...`` of this rank's plan (:mod:`._feed_plan`): it slices the sample
bodies out of the mapped shards through the offset indexes, decodes the msgpack maps (large
``bin`` values stay views of the mapping) and copies every array field once, straight into a
reusable batch buffer (pinned host memory when CUDA is there). The copies are numpy's, which
release the GIL, so readers overlap them. Batches are delivered in plan order, at most
``prefetch`` ahead of the consumer; with a CUDA ``device`` each is copied to the device on a
side stream (non-blocking, from pinned memory) while the previous one is being used.

There is no worker-to-trainer copy: the batch the model sees is the buffer the readers filled
(or its device copy). Positions are exact: :meth:`Feed.state_dict` counts the samples consumed
by all ranks, and :meth:`Feed.load_state_dict` restarts there in O(1), in any world size.
"""

import contextlib
import mmap
import os
import queue
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..codec import Codec, codec_for, unpack_map
from ..dataset import Dataset
from ..errors import AtdataError, AtdataWarning, SchemaError, ShardError
from ..loader import located
from ..sample import DictSample
from ..shards.reader import _map_file
from ..shards.tar import BLOCK, verify_indexed_headers
from ._feed_collate import BufferCollator, BufferPool, decode_bodies
from ._feed_plan import FeedPlan, epoch_order

__all__ = ["Feed", "FeedStateError", "feed"]

_STATE_VERSION = 1


class FeedStateError(AtdataError, ValueError):
    """A saved feed position does not fit this dataset or these settings."""


def feed(
    source: Any,
    *,
    batch_size: int,
    device: Any = None,
    threads: int = 2,
    prefetch: int = 4,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = True,
    uneven: str = "drop",
    rank: int | None = None,
    world_size: int | None = None,
    pin_memory: bool | None = None,
) -> "Feed":
    """Batches of ``source`` (a :class:`~atdata.Dataset`) as tensors, read by threads in this process.

    ``device``: where batches go (``None``/``"cpu"``: host tensors; ``"cuda"``: copied there
    on a side stream, non-blocking). ``pin_memory`` defaults to "when CUDA is available".
    ``rank``/``world_size`` default to ``torch.distributed`` when it is initialised, else
    ``RANK``/``WORLD_SIZE``, else a single process. See :class:`Feed`.
    """
    return Feed(
        source,
        batch_size=batch_size,
        device=device,
        threads=threads,
        prefetch=prefetch,
        shuffle=shuffle,
        seed=seed,
        epoch=epoch,
        drop_last=drop_last,
        uneven=uneven,
        rank=rank,
        world_size=world_size,
        pin_memory=pin_memory,
    )


def _distributed(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        r, w = int(dist.get_rank()), int(dist.get_world_size())
    else:
        r, w = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    return (r if rank is None else rank), (w if world_size is None else world_size)


class Feed:
    """An iterable of batches, shaped like :class:`~atdata.torch.TorchDataset`'s.

    A batch is a ``dict``: array fields as stacked tensors, numeric scalar fields as 1-d tensors,
    other fields as lists, and ``"__key__"``, the sample keys. Each ``iter()`` runs the rest of
    the current epoch and then moves to the next epoch (or call :meth:`set_epoch`). Every rank
    gets ``len(feed)`` batches; the epoch's remainder follows ``uneven``/``drop_last`` as in
    ``to_torch()``. Shuffled epochs are a permutation of the whole dataset, read at random
    through the offset indexes (fast on local disk or the page cache; for remote shards use
    ``cache=True``).
    """

    def __init__(
        self,
        source: Any,
        *,
        batch_size: int,
        device: Any = None,
        threads: int = 2,
        prefetch: int = 4,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        drop_last: bool = True,
        uneven: str = "drop",
        rank: int | None = None,
        world_size: int | None = None,
        pin_memory: bool | None = None,
    ) -> None:
        import torch

        dataset = getattr(source, "dataset", source)
        if not isinstance(dataset, Dataset):
            raise TypeError(f"feed() takes an atdata Dataset, not {type(source).__name__}")
        if batch_size < 1 or threads < 1 or prefetch < 1:
            raise ValueError("batch_size, threads and prefetch must be at least 1")
        if any(stage.kind == "filter" for stage in dataset._stages):
            raise TypeError(
                "feed() plans by sample index, which a filter makes unknown; filter when "
                "writing the dataset, or use to_torch() with a DataLoader"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.threads = threads
        self.prefetch = prefetch
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch
        if uneven not in ("drop", "pad"):
            raise ValueError(f"uneven must be 'drop' or 'pad', not {uneven!r}")
        self.drop_last = drop_last
        self.uneven = uneven
        self.rank, self.world_size = _distributed(rank, world_size)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not within world_size {self.world_size}")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        cuda = torch.cuda.is_available()
        self.pin_memory = cuda if pin_memory is None else (pin_memory and cuda)
        self._position = 0  # samples of this epoch consumed by all ranks together
        self._pool = BufferPool(pin=self.pin_memory)

    # -- plan and state -------------------------------------------------------------------------
    def _plan(self) -> FeedPlan:
        total = self.dataset.shards.total()
        order = epoch_order(total, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch)
        return FeedPlan(
            order,
            self.batch_size,
            self.rank,
            self.world_size,
            self._position,
            self.drop_last,
            self.uneven,
        )

    def __len__(self) -> int:
        """Batches this rank gets in the rest of the current epoch."""
        return len(self._plan())

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its beginning (changes the shuffled order)."""
        self.epoch = epoch
        self._position = 0

    def state_dict(self) -> dict[str, Any]:
        """The position: epoch and samples consumed by all ranks together (any rank's is fine)."""
        return {
            "version": _STATE_VERSION,
            "kind": "atdata.feed",
            "epoch": self.epoch,
            "position": self._position,
            "total": self.dataset.shards.total(),
            "shuffle": self.shuffle,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "drop_last": self.drop_last,
            "uneven": self.uneven,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict`; the world size may differ)."""
        if state.get("kind") != "atdata.feed" or state.get("version") != _STATE_VERSION:
            raise FeedStateError(f"not a feed state (version {_STATE_VERSION}): {state!r}")
        total = self.dataset.shards.total()
        if state["total"] != total:
            raise FeedStateError(
                f"the saved position is for {state['total']} samples but the dataset has {total}; "
                "resume on the same shards"
            )
        if (state["shuffle"], state["seed"]) != (self.shuffle, self.seed):
            raise FeedStateError(
                f"the saved position is for shuffle={state['shuffle']}, seed={state['seed']}; "
                f"this feed has shuffle={self.shuffle}, seed={self.seed}"
            )
        self.epoch = int(state["epoch"])
        self._position = int(state["position"])

    # -- iteration ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        plan = self._plan()
        n = len(plan)
        if n == 0:
            self._next_epoch()
            return
        readers = _Readers(self, plan)
        mover = _DeviceMover(self.device, readers.numeric)
        try:
            pending = mover.send(readers.get(0)) if n else None
            for b in range(n):
                current = pending
                pending = mover.send(readers.get(b + 1)) if b + 1 < n else None
                self._position = plan.position_after(b + 1)
                yield mover.receive(current)
            self._next_epoch()
        finally:
            readers.stop()

    def _next_epoch(self) -> None:
        self.epoch += 1
        self._position = 0

    def __repr__(self) -> str:
        return (
            f"Feed({self.dataset!r}, batch_size={self.batch_size}, threads={self.threads}, "
            f"device={self.device}, rank={self.rank}/{self.world_size}, epoch={self.epoch})"
        )


class _Readers:
    """Reader threads building this rank's batches, handed out in plan order."""

    def __init__(self, owner: Feed, plan: FeedPlan) -> None:
        ds = owner.dataset
        self.plan = plan
        self.dataset = ds
        self.shards = ds.shards
        self.cumulative = np.asarray(self.shards.cumulative(), dtype=np.int64)
        stype = ds._source_type
        if stype is DictSample:
            raise TypeError("feed() needs a typed Dataset (Dataset[T] or load_dataset(...))")
        self.codec: Codec[Any] = codec_for(stype)
        self.typed_out: Codec[Any] | None = None if not ds._stages else codec_for(ds.sample_type)
        self.collator = BufferCollator(self.codec, owner._pool)
        out_schema = (self.typed_out or self.codec).schema
        self.numeric = frozenset(
            f.name
            for f in out_schema.fields
            if f.type.kind in ("int", "float", "bool") and not f.type.optional
        )
        self.maps: dict[int, Any] = {}
        self.maps_lock = threading.Lock()
        self.count = owner.threads
        depth = max(1, -(-owner.prefetch // owner.threads))
        self.queues: list[queue.Queue[Any]] = [queue.Queue(depth) for _ in range(self.count)]
        self.stopping = threading.Event()
        self.workers = [
            threading.Thread(target=self._run, args=(t,), daemon=True, name=f"atdata-feed-{t}")
            for t in range(min(self.count, len(plan)))
        ]
        for w in self.workers:
            w.start()

    def get(self, b: int) -> Any:
        item = self.queues[b % self.count].get()
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        self.stopping.set()
        for q in self.queues:  # unblock readers waiting on a full queue
            while not q.empty():
                q.get_nowait()
        for w in self.workers:
            w.join(timeout=5)

    def _run(self, t: int) -> None:
        q = self.queues[t]
        for b in range(t, len(self.plan), self.count):
            if self.stopping.is_set():
                return
            try:
                item: Any = self._batch(self.plan.batch(b))
            except BaseException as exc:  # handed to the consumer, raised at this batch
                item = exc
            while not self.stopping.is_set():
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    # -- one batch --------------------------------------------------------------------------
    def _mapping(self, shard: int) -> Any:
        with self.maps_lock:
            view = self.maps.get(shard)
            if view is None:
                src = self.shards.source(shard)
                path = src.local_path()
                view = memoryview(_map_file(path, src.url)) if path is not None else src
                self.maps[shard] = view
            return view

    def _bodies(
        self, indices: "np.ndarray[Any, Any]"
    ) -> tuple[list[Any], list[str], list[Any], list[Any]]:
        shard_of = np.searchsorted(self.cumulative, indices, side="right") - 1
        spans: list[Any] = []
        bodies: list[Any] = [None] * len(indices)
        keys: list[str] = [""] * len(indices)
        origins: list[Any] = [None] * len(indices)
        for shard in np.unique(shard_of).tolist():
            where = np.nonzero(shard_of == shard)[0]
            members = indices[where] - self.cumulative[shard]
            idx = self.shards.offsets(shard)
            offs, sizes = idx.header_offsets[members], idx.sizes[members]
            view = self._mapping(shard)
            url = self.shards.urls[shard]
            if isinstance(view, memoryview):
                order = np.argsort(offs, kind="stable")
                bad = verify_indexed_headers(view.obj, offs[order], sizes[order])
                if bad is not None:
                    at = int(offs[order][bad])
                    raise ShardError(
                        f"shard {url}: the member header at byte {at} does not match its offset "
                        "index (the shard changed after it was indexed, or is damaged); "
                        "re-write or re-index the shard"
                    )
            if isinstance(view, memoryview):
                spans.append((view.obj, offs, sizes))
            for pos, m, o, s in zip(
                where.tolist(), members.tolist(), offs.tolist(), sizes.tolist(), strict=True
            ):
                if isinstance(view, memoryview):
                    bodies[pos] = view[o + BLOCK : o + BLOCK + s]
                else:
                    bodies[pos] = view.read_range(o + BLOCK, s)
                keys[pos] = idx.keys[m]
                origins[pos] = (url, o)
        return bodies, keys, origins, spans

    def _batch(self, indices: "np.ndarray[Any, Any]") -> tuple[dict[str, Any], list[str]]:
        bodies, keys, origins, spans = self._bodies(indices)
        try:
            if self.typed_out is None:
                maps = decode_bodies(bodies)
                columns = self.collator.collate(maps) if maps is not None else None
                if columns is not None:
                    return columns, keys
            return self._checked(bodies, keys, origins)
        finally:
            del bodies
            for mm, offs, sizes in spans:
                _release(mm, offs, sizes)

    def _checked(
        self, bodies: list[Any], keys: list[str], origins: list[Any]
    ) -> tuple[dict[str, Any], list[str]]:
        """The slow path: sample by sample, naming a bad one and applying ``on_error``."""
        from ..batch import collate_samples

        samples: list[Any] = []
        good_keys: list[str] = []
        for body, key, (url, offset) in zip(bodies, keys, origins, strict=True):
            try:
                sample = self.codec.from_map(unpack_map(body))
            except SchemaError as exc:
                err = located(exc, url, offset, key)
                if self.dataset.on_error == "raise":
                    raise err from None
                if self.dataset.on_error == "warn":
                    warnings.warn(f"skipped: {err}", AtdataWarning, stacklevel=2)
                continue
            for stage in self.dataset._stages:
                sample = stage.fn(sample)
            samples.append(sample)
            good_keys.append(key)
        out_codec = self.typed_out or self.codec
        batch = collate_samples(out_codec, samples, good_keys)
        return dict(batch.columns), good_keys


_PAGE = mmap.PAGESIZE
_MAX_RUNS = 32


def _release(mm: Any, offs: "np.ndarray[Any, Any]", sizes: "np.ndarray[Any, Any]") -> None:
    """Drop the mapping's pages a batch has read from this process (not from the page cache).

    The batch holds its own copy of every byte it needs; without this the mapped shards would
    count in the training process's RSS, up to the size of the dataset. Another reader touching
    the same pages just faults them in again from the page cache.
    """
    if not hasattr(mm, "madvise"):
        return
    starts = (offs + BLOCK) // _PAGE * _PAGE
    ends = offs + BLOCK + sizes
    order = np.argsort(starts)
    starts, ends = starts[order], np.maximum.accumulate(ends[order])
    breaks = np.nonzero(starts[1:] > ends[:-1])[0] + 1
    if len(breaks) >= _MAX_RUNS:  # scattered (shuffled small records): one span for the shard
        runs = [(int(starts[0]), int(ends[-1]))]
    else:
        runs = list(
            zip(starts[np.r_[0, breaks]].tolist(), ends[np.r_[breaks - 1, -1]].tolist(), strict=True)
        )
    with contextlib.suppress(OSError, ValueError):
        for lo, hi in runs:
            mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


class _DeviceMover:
    """Turns a collated batch into tensors, on the device; overlaps the copy with use."""

    def __init__(self, device: Any, numeric: frozenset[str]) -> None:
        import torch

        self.numeric = numeric  # scalar int/float/bool fields: 1-d tensors
        self.torch = torch
        self.device = device
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self.in_flight: list[tuple[Any, Any]] = []  # (event, host tensors) until copied

    def send(self, item: tuple[dict[str, Any], list[str]]) -> dict[str, Any]:
        torch = self.torch
        columns, keys = item
        out: dict[str, Any] = {}
        host: list[Any] = []
        for name, col in columns.items():
            if isinstance(col, np.ndarray) and col.dtype.kind in "biufc":
                t = torch.from_numpy(col)
                host.append(t)
                out[name] = t
            elif name in self.numeric and col:
                out[name] = torch.as_tensor(col)
            else:
                out[name] = col
        out["__key__"] = keys
        if self.cuda:
            self.in_flight = [(e, h) for e, h in self.in_flight if not e.query()]
            with torch.cuda.stream(self.stream):
                for name, value in out.items():
                    if isinstance(value, torch.Tensor):
                        out[name] = value.to(self.device, non_blocking=True)
                event = torch.cuda.Event()
                event.record(self.stream)
            self.in_flight.append((event, host))  # the pinned buffers stay ours until copied
        elif self.device.type != "cpu":
            for name, value in out.items():
                if isinstance(value, torch.Tensor):
                    out[name] = value.to(self.device)
        return out

    def receive(self, out: dict[str, Any]) -> dict[str, Any]:
        if self.cuda:
            current = self.torch.cuda.current_stream(self.device)
            current.wait_stream(self.stream)
            for value in out.values():
                if isinstance(value, self.torch.Tensor):
                    value.record_stream(current)
        return out
