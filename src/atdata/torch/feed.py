"""``atdata.torch.feed``: batches for the training process without DataLoader worker processes.

A :class:`Feed` runs ``threads`` reader threads inside the training process over the same plan
as :class:`~atdata.torch.TorchDataset` (same epoch order, same rank layout, same state dict).
Reader ``t`` builds this rank's batches ``t, t + threads, ...``: it slices the sample bodies out
of the shards through the offset indexes, decodes the msgpack maps (large ``bin`` values stay
views of the mapped shard) and copies every array field once, straight into a reusable batch
buffer (pinned host memory when CUDA is available). The copies are numpy's, which release the
GIL, so readers overlap them. Batches are delivered in plan order, at most ``prefetch`` ahead of
the consumer; with a CUDA ``device`` each is copied there on a side stream (non-blocking, from
pinned memory) while the previous one is in use.

There is no worker-to-trainer copy: the batch the model gets is the buffer the readers filled (or
its device copy). A buffer is reused only once nothing refers to it any more.

With ``processes=N`` the readers are ``N`` processes instead, forked by the first pass and kept
(no GIL between them), collating into one shared buffer that is page-locked for the GPU once;
see :mod:`atdata.torch._procfeed`.
"""

import queue
import threading
from collections.abc import Iterator
from typing import Any

from ..batch import SampleBatch
from ..errors import InvalidArgumentError
from ..planreader import PlanReader
from ..slots import SlotReader
from ._feed_collate import BufferCollator, BufferPool, decode_bodies
from ._position import ConsumedPosition
from ._procfeed import ProcessReaders, SharedBuffer, fork_available, slot_bytes_for
from .dataset import TorchDataset, to_tensors

__all__ = ["Feed", "feed"]


def feed(
    source: Any,
    batch_size: int | None = None,
    *,
    device: Any = None,
    threads: int | None = None,
    processes: int = 0,
    prefetch: int = 4,
    pin_memory: bool | None = None,
    **plan: Any,
) -> "Feed":
    """Batches of ``source`` as tensors, read by threads in this process (no worker processes).

    ``source`` is a :class:`~atdata.Dataset` (the remaining keyword arguments are
    :meth:`~atdata.Dataset.to_torch`'s: ``shuffle``, ``seed``, ``drop_last``, ``uneven``,
    ``rank``, ``world_size``, ...) or a :class:`~atdata.torch.TorchDataset`. ``device``: where
    batches go (``None``/``"cpu"``: host tensors; ``"cuda"``: copied there on a side stream).
    ``pin_memory`` defaults to "when CUDA is available". ``threads`` (default 2) reader threads
    in this process, or ``processes`` reader processes (forked by the first pass and kept while
    passes read to their end; give one or the other). See :class:`Feed`.
    """
    if isinstance(source, TorchDataset):
        if plan or (batch_size is not None and batch_size != source.batch_size):
            raise TypeError(
                "feed(torch_dataset) takes its plan from the dataset: no plan arguments"
            )
        tds = source
    else:
        tds = source.to_torch(64 if batch_size is None else batch_size, **plan)
    return Feed(
        tds,
        device=device,
        threads=threads,
        processes=processes,
        prefetch=prefetch,
        pin_memory=pin_memory,
    )


class Feed(ConsumedPosition):
    """An iterable of batches, the same dicts as :class:`~atdata.torch.TorchDataset` yields.

    ``len()``, :meth:`set_epoch`, :meth:`state_dict` and :meth:`load_state_dict` are the torch
    dataset's: a state saved from a feed resumes a DataLoader and vice versa, in any world size.
    As with the torch dataset, a finished epoch does not advance by itself: call ``set_epoch``
    (iterating again without it reads the same epoch again).

    With ``processes``, host batches (``device`` None or ``"cpu"``) are copies out of the shared
    buffer, so a batch the caller keeps never changes; CUDA batches are device copies. The reader
    processes are forked by the first pass and kept while passes read to their end; they are
    stopped by a pass that ends early (``break``, the iterator closed or collected, an error), by
    :meth:`close` (which also releases the shared buffer), when the feed is collected and when
    this process dies.
    """

    def __init__(
        self,
        dataset: TorchDataset,
        *,
        device: Any = None,
        threads: int | None = None,
        processes: int = 0,
        prefetch: int = 4,
        pin_memory: bool | None = None,
    ) -> None:
        import torch

        if processes and threads is not None:
            raise InvalidArgumentError("give threads or processes, not both")
        threads = 2 if threads is None else threads
        if threads < 1 or prefetch < 1 or processes < 0:
            raise InvalidArgumentError("threads and prefetch must be at least 1, processes >= 0")
        if processes and not fork_available():
            raise InvalidArgumentError("feed(processes=...) needs the fork start method")
        self.dataset = dataset
        self.threads = threads
        self.processes = processes
        self.prefetch = prefetch
        self._buffer: SharedBuffer | None = None
        self._active: ProcessReaders | None = None
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        cuda = torch.cuda.is_available()
        self.pin_memory = cuda if pin_memory is None else (pin_memory and cuda)
        self._pool = BufferPool(pin=self.pin_memory)

    @property
    def batch_size(self) -> int:
        return self.dataset.batch_size

    @property
    def epoch(self) -> int:
        return self.dataset.epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self._begin_pass()
        order, layout = self.dataset.plan()
        n = layout.rank_batches
        mover = _DeviceMover(self.device)
        readers: _Readers | ProcessReaders
        send: Any = mover.send
        if self.processes:
            if self._active is None:  # forked once, kept while passes read to their end
                self._active = ProcessReaders(self, self._shared(order, layout))
            readers = self._active
            readers.begin(mover)
            send = _sent  # the readers' batches are on their way to the device already
        else:
            readers = _Readers(self, order, layout, n)
        try:
            ahead: dict[int, dict[str, Any]] = {}  # batches already on their way to the device
            for b in range(n):
                current = ahead.pop(b) if b in ahead else send(readers.get(b))
                if mover.cuda and b + 1 < n:  # start the next copy now if that batch is ready
                    ready = readers.poll(b + 1)
                    if ready is not None:
                        ahead[b + 1] = send(ready)
                self._consumed = b + 1
                yield mover.receive(current)
            self._finished = True
        finally:
            if isinstance(readers, ProcessReaders) and self._finished:
                readers.finish()
            else:  # threads; or a pass that ended early: its readers are stopped
                readers.stop()
                if self._active is readers:
                    self._active = None

    def _shared(self, order: Any, layout: Any) -> SharedBuffer:
        """The reader processes' buffer: made once (sized by this pass's first batch), kept."""
        if self._buffer is None:
            slots = max(4, -(-self.prefetch // self.processes) + 1)
            size = slot_bytes_for(self.dataset, order, layout)
            cuda = self.device.type == "cuda"
            self._buffer = SharedBuffer(self.processes, slots, size, cuda)
        return self._buffer

    @property
    def reader_pids(self) -> list[int]:
        """The process ids of the reader processes (none with threads, or when none run)."""
        return self._active.pids if self._active is not None else []

    def close(self) -> None:
        """Stop the reader processes and release the shared buffer (processes only)."""
        if self._active is not None:
            self._active.stop()
            self._active = None
        if self._buffer is not None:
            self._buffer.close()
            self._buffer = None

    def __repr__(self) -> str:
        workers = f"processes={self.processes}" if self.processes else f"threads={self.threads}"
        return f"Feed({self.dataset!r}, {workers}, device={self.device})"


def _sent(batch: dict[str, Any]) -> dict[str, Any]:
    return batch


class _Readers:
    """Reader threads building this rank's batches, handed out in plan order."""

    def __init__(self, owner: Feed, order: Any, layout: Any, n: int) -> None:
        ds = owner.dataset.dataset
        self.order, self.layout, self.n = order, layout, n
        self.rank = owner.dataset.rank
        self.plan_lock = threading.Lock()  # the order caches permutations: one caller at a time
        self.reader = PlanReader(ds)  # the checked path: stages, bad samples, on_error
        self.fast = not self.reader.staged  # member layout: the checked path too
        self.names = tuple(self.reader.output_names)
        # one slot reader per thread: its mapping cache is not shared between threads
        self.slots = [SlotReader(ds.shards) for _ in range(owner.threads)]
        self.collator = BufferCollator(self.reader.codec, owner._pool)
        self.count = owner.threads
        depth = max(1, -(-owner.prefetch // owner.threads))
        self.queues: list[queue.Queue[Any]] = [queue.Queue(depth) for _ in range(self.count)]
        self.stopping = threading.Event()
        self.workers = [
            threading.Thread(target=self._run, args=(t,), daemon=True, name=f"atdata-feed-{t}")
            for t in range(min(self.count, n))
        ]
        for w in self.workers:
            w.start()

    def get(self, b: int) -> Any:
        item = self.queues[b % self.count].get()
        if isinstance(item, BaseException):
            raise item
        return item

    def poll(self, b: int) -> Any:
        """Batch ``b`` if it is ready (the one after the last taken), else None."""
        try:
            item = self.queues[b % self.count].get_nowait()
        except queue.Empty:
            return None
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
        for b in range(t, self.n, self.count):
            if self.stopping.is_set():
                return
            try:
                item: Any = self._batch(b)
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

    def _batch(self, b: int) -> dict[str, Any]:
        with self.plan_lock:
            positions = self.layout.positions(self.rank, b)
            shards, members = self.order.locate(positions)
        if self.fast:
            got = self.slots[b % self.count].read(shards, members)
            if not got.errors and got.bodies:
                maps = decode_bodies(got.bodies)
                del got.bodies  # let the shard mappings go as soon as the bytes are copied
                columns = self.collator.collate(maps) if maps is not None else None
                if columns is not None:
                    return to_tensors(SampleBatch(self.reader.codec, columns, got.keys), self.names)
        # something to check, skip or transform: the torch dataset's own path for this batch
        with self.plan_lock:
            batch = self.reader.batch(self.order, positions)
        return to_tensors(batch, self.names)


class _DeviceMover:
    """Puts a batch on the device; with CUDA the copy runs on a side stream, ahead of use."""

    def __init__(self, device: Any) -> None:
        import torch

        self.torch = torch
        self.device = device
        self.cuda = device.type == "cuda"
        self.stream: Any = torch.cuda.Stream(device) if self.cuda else None  # type: ignore[no-untyped-call]
        self.in_flight: list[tuple[Any, Any]] = []  # (event, host batch) until the copy is done
        self.last_event: Any = None  # recorded after the last send's copies

    def send(self, host: dict[str, Any]) -> dict[str, Any]:
        torch = self.torch
        if self.device.type == "cpu":
            return host
        out = dict(host)
        if not self.cuda:
            for name, value in host.items():
                if isinstance(value, torch.Tensor):
                    out[name] = value.to(self.device)
            return out
        self.in_flight = [(e, h) for e, h in self.in_flight if not e.query()]
        with torch.cuda.stream(self.stream):
            for name, value in host.items():
                if isinstance(value, torch.Tensor):
                    out[name] = value.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self.stream)
        self.last_event = event
        self.in_flight.append((event, host))  # the pinned buffers stay ours until copied
        return out

    def receive(self, out: dict[str, Any]) -> dict[str, Any]:
        if self.cuda:
            current = self.torch.cuda.current_stream(self.device)
            current.wait_stream(self.stream)
            for value in out.values():
                if isinstance(value, self.torch.Tensor):
                    value.record_stream(current)
        return out
