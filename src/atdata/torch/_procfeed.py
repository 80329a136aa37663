"""Reader processes for ``feed(..., processes=N)``: batches collated into one shared buffer.

The first pass forks ``N`` reader processes (before it starts anything else); they are kept while
passes read to their end, and each pass's ``"pass"`` message makes every reader compute the
current plan (the epoch state is shared memory). Reader ``k`` builds batches ``k, k + N, ...``
as the threaded feed does (offset indexes -> msgpack maps -> every array field copied once), but
allocates the batch arrays in a slot of one anonymous shared buffer (``memfd``), then sends the
slot's layout and the small columns (labels, keys, strings) on a pipe. The training process takes
batches in plan order:

- with a CUDA device it registers the whole buffer with ``cudaHostRegister`` once, copies each
  slot to the GPU (non-blocking, no staging copy) and gives the slot back to its reader once the
  event recorded after the copy has completed; if registration fails it copies each slot into
  pinned memory first (logged once);
- otherwise it copies the arrays out of the slot and gives the slot back at once, so a batch the
  caller keeps never changes.

Readers never touch CUDA (they map the buffer themselves and only read files, decode and copy).
They exit when the feed stops them (a pass that ends early: ``break``, an error; ``close()``;
garbage collection) and when the training process dies (``PR_SET_PDEATHSIG`` on Linux, and a parent
check whenever they wait).
"""

import contextlib
import ctypes
import logging
import mmap
import multiprocessing
import os
import pickle
import signal
import warnings
import weakref
from collections import deque
from typing import Any, NamedTuple

import numpy as np

from ..batch import SampleBatch
from ..errors import AtdataError
from ..planreader import PlanReader
from ..slots import SlotReader
from ._feed_collate import BufferCollator, decode_bodies
from .dataset import to_tensors

__all__ = ["ProcessReaders", "SharedBuffer", "fork_available", "slot_bytes_for"]

log = logging.getLogger(__name__)
_ALIGN = 64
_POLL_S = 0.005
_SMALL = 1 << 20  # a column below this that is not in a slot is pinned before its copy


def fork_available() -> bool:
    return "fork" in multiprocessing.get_all_start_methods() and hasattr(os, "fork")


class SharedBuffer:
    """``readers x slots`` batch slots in one anonymous shared file, mapped here; page-locked
    once for CUDA (unregistered on :meth:`close`)."""

    def __init__(self, readers: int, slots: int, slot_bytes: int, cuda: bool) -> None:
        self.readers, self.slots, self.slot_bytes = readers, slots, slot_bytes
        self.total = readers * slots * slot_bytes
        if hasattr(os, "memfd_create"):  # no /dev/shm size limit, gone with the last mapping
            self.fd = os.memfd_create("atdata-feed", os.MFD_CLOEXEC)
        else:  # pragma: no cover - platforms without memfd
            import tempfile

            with tempfile.TemporaryFile() as tmp:
                self.fd = os.dup(tmp.fileno())
        os.ftruncate(self.fd, self.total)
        self.mm = mmap.mmap(self.fd, self.total)
        self.array = np.frombuffer(self.mm, dtype=np.uint8)
        self.registered = False
        self._ptr = 0
        if cuda:
            self._register()
        self._finalizer = weakref.finalize(
            self, _release_buffer, self.mm, self.fd, self._ptr if self.registered else 0
        )

    def _register(self) -> None:
        import torch

        self._ptr = int(self.array.ctypes.data)
        try:
            err = int(torch.cuda.cudart().cudaHostRegister(self._ptr, self.total, 0))  # type: ignore[no-untyped-call]
        except Exception as exc:  # no runtime bindings, no driver: copy through pinned staging
            err, why = -1, repr(exc)
        else:
            why = f"cudaError {err}"
        if err == 0:
            self.registered = True
        else:
            log.warning(
                "atdata feed: cudaHostRegister of the %d-byte reader buffer failed (%s); "
                "batches are copied through pinned staging memory instead",
                self.total,
                why,
            )

    def start(self, reader: int, slot: int) -> int:
        return (reader * self.slots + slot) * self.slot_bytes

    def close(self) -> None:
        self.array = np.empty(0, dtype=np.uint8)
        self._finalizer()


def _release_buffer(mm: mmap.mmap, fd: int, registered_ptr: int) -> None:
    if registered_ptr:
        with contextlib.suppress(Exception):
            import torch

            torch.cuda.synchronize()
            torch.cuda.cudart().cudaHostUnregister(registered_ptr)  # type: ignore[no-untyped-call]
    with contextlib.suppress(BufferError):  # a view still refers to it: goes with the process
        mm.close()
    with contextlib.suppress(OSError):
        os.close(fd)


class _Arena:
    """The batch allocator in a reader: arrays packed into the current slot (aligned); an array
    that does not fit is an ordinary one (sent by value)."""

    def __init__(self, buf: "np.ndarray[Any, Any]", slot_bytes: int) -> None:
        self.buf, self.slot_bytes = buf, slot_bytes
        self.base, self.used = 0, 0

    def begin(self, base: int) -> None:
        self.base, self.used = base, 0

    def empty(self, shape: tuple[int, ...], dtype: "np.dtype[Any]") -> "np.ndarray[Any, Any]":
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        off = -(-self.used // _ALIGN) * _ALIGN
        if dtype.hasobject or off + nbytes > self.slot_bytes:
            return np.empty(shape, dtype)
        self.used = off + nbytes
        start = self.base + off
        return self.buf[start : start + nbytes].view(dtype).reshape(shape)

    def describe(self, col: Any) -> Any:
        """``("slot", offset, shape, dtype)`` for an array in the current slot, else the value."""
        if not isinstance(col, np.ndarray) or not col.flags.c_contiguous:
            return ("value", col)
        addr = int(col.__array_interface__["data"][0]) - int(self.buf.ctypes.data)
        if not self.base <= addr <= addr + col.nbytes <= self.base + self.slot_bytes:
            return ("value", col)
        return ("slot", addr - self.base, col.shape, col.dtype.str)


def _portable(exc: BaseException) -> tuple[Any, ...]:
    """An exception as (class, message, attributes), picklable whatever its ``__init__``."""
    state = dict(getattr(exc, "__dict__", {}))
    try:
        pickle.dumps((type(exc), state))
        return (type(exc), str(exc), state)
    except Exception:
        return (None, f"{type(exc).__name__}: {exc}", {})


def _rebuild(cls: Any, message: str, state: dict[str, Any]) -> BaseException:
    if cls is None or not (isinstance(cls, type) and issubclass(cls, BaseException)):
        return AtdataError(f"feed reader process failed: {message}")
    exc: BaseException = cls.__new__(cls)
    BaseException.__init__(exc, message)
    exc.__dict__.update(state)
    return exc


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(Exception):  # Linux: SIGKILL when the parent thread exits
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _recv(conn: Any, parent: int) -> Any:
    """The next message (a free slot or ``"pass"``); None once the feed closed the pipe."""
    while not conn.poll(0.5):
        if os.getppid() != parent:
            os._exit(1)
    try:
        return conn.recv()
    except (EOFError, OSError):
        return None


def _reader_main(k: int, spec: "_Spec", free: Any, done: Any, parent: int) -> None:
    """A forked reader: for every ``"pass"``, this rank's batches ``k, k + count, ...`` of the
    current plan, each in a free slot of its own."""
    _die_with_parent(parent)
    buf = spec.buffer
    mm = mmap.mmap(buf.fd, buf.total)  # its own mapping (a registered range may not be inherited)
    arena = _Arena(np.frombuffer(mm, dtype=np.uint8), buf.slot_bytes)
    builder = _Builder(spec.dataset.dataset, arena)
    rank = spec.dataset.rank
    stash: list[int] = []  # slots given back between passes
    while True:
        msg = _recv(free, parent)
        if msg is None:
            return
        if msg != "pass":
            stash.append(int(msg))
            continue
        order, layout = spec.dataset.plan()  # the training process's plan (shared epoch state)
        for b in range(k, layout.rank_batches, spec.readers):
            s = stash.pop() if stash else _recv(free, parent)
            if s is None:
                return
            arena.begin(buf.start(k, s))
            try:
                out: tuple[Any, ...] = ("ok", b, s, builder.build(order, layout.positions(rank, b)))
            except BaseException as exc:
                out = ("error", b, s, _portable(exc))
            try:
                done.send(out)
            except (BrokenPipeError, OSError):
                return
            if out[0] == "error":
                return


class _Builder:
    """A reader process's batch builder: the threaded feed's fast path, else the checked one."""

    def __init__(self, ds: Any, arena: _Arena) -> None:
        self.reader = PlanReader(ds)
        self.reader.use_allocator(arena.empty)
        self.fast = not self.reader.staged
        self.slots = SlotReader(ds.shards)
        self.collator = BufferCollator(self.reader.codec, arena)  # type: ignore[arg-type]
        self.arena = arena

    def build(self, order: Any, positions: Any) -> tuple[Any, ...]:
        reader, arena = self.reader, self.arena
        batch: Any = None
        if self.fast:
            shards, members = order.locate(positions)
            got = self.slots.read(shards, members)
            if not got.errors and got.bodies:
                maps = decode_bodies(got.bodies)
                del got.bodies
                columns = self.collator.collate(maps) if maps is not None else None
                if columns is not None:
                    batch = SampleBatch(reader.codec, columns, got.keys)
        if batch is None:  # something to check, skip or transform: the checked path
            batch = reader.batch(order, positions)
        if not isinstance(batch, SampleBatch):
            return ("raw", batch)
        cols = {name: arena.describe(col) for name, col in batch.columns.items()}
        return ("batch", cols, list(batch.keys))


def slot_bytes_for(dataset: Any, order: Any, layout: Any) -> int:
    """A slot's size: the array bytes of the pass's first batch (read here, before any fork),
    with room to spare; arrays of a larger batch that do not fit travel by value."""
    if layout.rank_batches == 0:
        return mmap.PAGESIZE
    batch = PlanReader(dataset.dataset).batch(order, layout.positions(dataset.rank, 0))
    need = 0
    if isinstance(batch, SampleBatch):
        for col in batch.columns.values():
            if isinstance(col, np.ndarray):
                need += -(-col.nbytes // _ALIGN) * _ALIGN
    need = need + need // 4 + 4096
    return -(-need // mmap.PAGESIZE) * mmap.PAGESIZE


class _Spec(NamedTuple):
    """What a reader needs (handed over by fork, not pickled)."""

    buffer: SharedBuffer
    dataset: Any
    readers: int


class ProcessReaders:
    """The reader processes, forked once and kept while passes read to their end; each pass
    (:meth:`begin`) hands this rank's batches out in plan order."""

    def __init__(self, owner: Any, buffer: SharedBuffer) -> None:
        self.dataset = owner.dataset
        self.buffer = buffer
        self.count = buffer.readers
        self.mover: Any = None
        self.zero_copy = False
        self.codec = PlanReader(self.dataset.dataset).codec
        self.names = tuple(PlanReader(self.dataset.dataset).output_names)
        self.pending: deque[tuple[Any, int, int]] = deque()  # (copy event, reader, slot)
        ctx = multiprocessing.get_context("fork")
        self.free: list[Any] = []
        self.done: list[Any] = []
        self.procs: list[Any] = []
        parent = os.getpid()
        spec = _Spec(buffer, self.dataset, self.count)
        for k in range(self.count):
            free_r, free_w = ctx.Pipe(duplex=False)
            done_r, done_w = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_reader_main,
                args=(k, spec, free_r, done_w, parent),
                daemon=True,
                name=f"atdata-feed-reader-{k}",
            )
            with warnings.catch_warnings():
                # Python 3.12+ warns on fork() in a process with threads (torch's, CUDA's). The
                # child runs no torch, no CUDA and takes no lock another thread may hold: see
                # .planning/gpufeed2.md
                warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*fork")
                proc.start()
            free_r.close()
            done_w.close()
            self.free.append(free_w)
            self.done.append(done_r)
            self.procs.append(proc)
        for k in range(len(self.procs)):
            for s in range(buffer.slots):
                self._give(k, s)
        self._finalizer = weakref.finalize(self, _stop_procs, self.procs, self.free + self.done)

    def begin(self, mover: Any) -> None:
        """Start a pass over the dataset's current plan (every reader computes it the same)."""
        self.mover = mover
        self.zero_copy = mover.cuda and self.buffer.registered
        for conn in self.free:
            conn.send("pass")

    def finish(self) -> None:
        """The pass was read to its end: every slot back to its reader, the readers kept."""
        while self.pending:
            event, k, s = self.pending.popleft()
            event.synchronize()
            self._give(k, s)

    @property
    def pids(self) -> list[int]:
        return [int(p.pid) for p in self.procs]

    def get(self, b: int) -> dict[str, Any]:
        """Batch ``b``, sent to the device (waiting for its reader)."""
        k = b % self.count
        conn = self.done[k]
        while not conn.poll(_POLL_S):
            self._release()
            if not self.procs[k].is_alive() and not conn.poll(0):
                raise AtdataError(
                    f"feed reader process {k} exited (code {self.procs[k].exitcode}) before "
                    f"delivering batch {b}"
                )
        return self._deliver(k, b, conn)

    def poll(self, b: int) -> dict[str, Any] | None:
        k = b % self.count
        if not self.done[k].poll(0):
            return None
        return self._deliver(k, b, self.done[k])

    def _deliver(self, k: int, b: int, conn: Any) -> dict[str, Any]:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            raise AtdataError(
                f"feed reader process {k} exited before delivering batch {b}"
            ) from None
        kind, got, s, payload = msg
        if kind == "error":
            raise _rebuild(*payload)
        if got != b:  # pragma: no cover - a reader's batches arrive in order on its pipe
            raise AtdataError(f"feed reader process {k} sent batch {got}, expected {b}")
        host = self._host(k, s, payload)
        if self.zero_copy:
            out = self.mover.send(host)
            self.pending.append((self.mover.last_event, k, s))
            self._release()
            return out  # type: ignore[no-any-return]
        self._give(k, s)  # copied out of the slot already
        return self.mover.send(host)  # type: ignore[no-any-return]

    def _host(self, k: int, s: int, payload: tuple[Any, ...]) -> dict[str, Any]:
        import torch

        if payload[0] == "raw":
            return to_tensors(payload[1], self.names)
        _, cols, keys = payload
        base = self.buffer.start(k, s)
        columns: dict[str, Any] = {}
        for name, desc in cols.items():
            if desc[0] == "value":
                columns[name] = desc[1]
                continue
            _, off, shape, dtype = desc
            dt = np.dtype(dtype)
            nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            view = self.buffer.array[base + off : base + off + nbytes].view(dt).reshape(shape)
            columns[name] = view if self.zero_copy else self._copy(view)
        out = to_tensors(SampleBatch(self.codec, columns, keys), self.names)
        if self.mover.cuda:  # the small columns (labels) page-locked too: no synchronous copy
            for name, value in out.items():
                small = isinstance(value, torch.Tensor) and value.nbytes < _SMALL
                if small and not value.is_pinned():
                    out[name] = value.pin_memory()
        return out

    def _copy(self, view: "np.ndarray[Any, Any]") -> "np.ndarray[Any, Any]":
        if not self.mover.cuda:
            return view.copy()
        import torch  # registration failed: pinned staging, so the device copy stays async

        host = torch.empty(max(view.nbytes, 1), dtype=torch.uint8, pin_memory=True)
        out: np.ndarray[Any, Any] = host.numpy()[: view.nbytes].view(view.dtype).reshape(view.shape)
        np.copyto(out, view)
        return out

    def _release(self) -> None:
        """Give back the slots whose copies to the device are done."""
        pending = self.pending
        while pending and pending[0][0].query():
            event, k, s = pending.popleft()
            event.synchronize()
            self._give(k, s)

    def _give(self, k: int, s: int) -> None:
        with contextlib.suppress(OSError):  # a reader done with its batches has gone
            self.free[k].send(s)

    def stop(self) -> None:
        while self.pending:  # the buffer outlives the pass: no copy may still read a slot
            self.pending.popleft()[0].synchronize()
        self._finalizer()


def _stop_procs(procs: list[Any], conns: list[Any]) -> None:
    for c in conns:
        with contextlib.suppress(OSError):
            c.close()
    for p in procs:
        if p.is_alive():
            p.kill()
    for p in procs:
        p.join(timeout=10)
