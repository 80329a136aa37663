"""EXPERIMENTAL (bench only, not the library): reader processes collating into one shared,
GPU-registered buffer.

The DataLoader path copies every byte twice in the training process's neighbourhood (worker
shared memory -> the pin-memory thread's pinned buffer -> GPU) and pays a fresh mapping of each
batch's segment; the in-process feed stops scaling at two threads (GIL). This variant:

- the trainer makes ONE anonymous shared buffer (``memfd_create``, so ``/dev/shm``'s size does not
  matter) of ``workers x slots`` batch slots and forks ``workers`` reader processes, which map it
  themselves;
- reader ``w`` builds batches ``w, w + workers, ...`` of the same plan as ``ds.to_torch()``
  (offset indexes -> msgpack maps -> the image bytes copied once, straight into a free slot of
  its own) and sends ``(batch, slot, labels)`` on its queue;
- the trainer registers the whole buffer with ``cudaHostRegister`` ONCE (after the fork: the
  readers never touch CUDA), takes batches in plan order and copies each slot to the GPU
  (``non_blocking``, from page-locked memory, no staging copy); a slot goes back to its reader
  once the event recorded after its copy has completed.

Without CUDA the "device copy" is a host memcpy into a fresh tensor, so the path runs anywhere.
At most ``slots - 1`` copies per reader are in flight, so a reader always gets a slot back.
"""

import contextlib
import mmap
import multiprocessing
import os
import queue
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

import atdata
from atdata.planreader import PlanReader
from atdata.slots import SlotReader
from atdata.torch._feed_collate import BufferCollator, decode_bodies

_GET_POLL_S = 0.002


class _SlotPool:
    """``BufferCollator``'s pool: the batch's single array column goes into the current slot."""

    def __init__(self) -> None:
        self.target: np.ndarray[Any, Any] | None = None

    def empty(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        target, self.target = self.target, None
        if target is None or nbytes > target.nbytes:
            raise RuntimeError("shm feed: one array field per batch, at most a slot's size")
        return target[:nbytes].view(dtype).reshape(shape)


def _get(q: Any, parent: int) -> Any:
    """``q.get()``, but the process exits once its parent is gone (killed on a timeout)."""
    while True:
        try:
            return q.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                os._exit(1)


def _reader(
    w: int, spec: dict[str, Any], fd: int, total: int, free: Any, done: Any, cmd: Any
) -> None:
    """A forked reader process: fills its slots with its batches, one pass per command."""
    parent = os.getppid()
    mm = mmap.mmap(fd, total)
    buf = np.frombuffer(mm, dtype=np.uint8)
    slot_bytes, slots, workers = spec["slot_bytes"], spec["slots"], spec["workers"]
    ds = atdata.Dataset[spec["type"]](spec["url"])  # type: ignore[misc]
    tds = ds.to_torch(batch_size=spec["batch"], drop_last=False)
    reader = PlanReader(ds)
    slot_reader = SlotReader(ds.shards)
    pool = _SlotPool()
    collator = BufferCollator(reader.codec, pool)  # type: ignore[arg-type]
    label = spec["label"]
    while _get(cmd, parent) is not None:
        try:
            order, layout = tds.plan()
            for b in range(w, layout.rank_batches, workers):
                s = _get(free, parent)
                shards, members = order.locate(layout.positions(0, b))
                got = slot_reader.read(shards, members)
                maps = decode_bodies(got.bodies) if not got.errors else None
                start = (w * slots + s) * slot_bytes
                pool.target = buf[start : start + slot_bytes]
                cols = collator.collate(maps) if maps is not None else None
                if cols is None:
                    raise RuntimeError(f"shm feed: batch {b} needs the checked path")
                del got, maps
                done.put((b, s, len(cols[label]), list(cols[label])))
        except BaseException as exc:  # the trainer raises it at this reader's next batch
            done.put(("error", repr(exc)))
    # the mapping goes with the process (collator views may still refer to it)


class ShmFeed:
    """Batches ``{"image": device tensor, "label": device tensor}`` of one pass per ``iter``."""

    def __init__(
        self,
        url: str,
        sample_type: type,
        batch: int,
        shape: tuple[int, ...],
        *,
        workers: int,
        device: torch.device,
        slots: int = 4,
        label: str = "label",
    ) -> None:
        self.shape = shape
        self.row = int(np.prod(shape))
        self.slot_bytes = -(-batch * self.row // mmap.PAGESIZE) * mmap.PAGESIZE
        self.slots, self.workers, self.device = slots, workers, device
        self.cuda = device.type == "cuda"
        self.n = len(atdata.Dataset[sample_type](url).to_torch(batch_size=batch, drop_last=False))  # type: ignore[misc]
        total = self.slot_bytes * slots * workers
        self.fd = os.memfd_create("atdata-bench-shm-feed")
        os.ftruncate(self.fd, total)
        self.mm = mmap.mmap(self.fd, total)
        ctx = multiprocessing.get_context("fork")  # before any CUDA use in this process
        self.free = [ctx.Queue() for _ in range(workers)]
        self.done = [ctx.Queue() for _ in range(workers)]
        self.cmd = [ctx.Queue() for _ in range(workers)]
        spec = {
            "url": url,
            "type": sample_type,
            "batch": batch,
            "slot_bytes": self.slot_bytes,
            "slots": slots,
            "workers": workers,
            "label": label,
        }
        self.procs = [
            ctx.Process(
                target=_reader,
                args=(w, spec, self.fd, total, self.free[w], self.done[w], self.cmd[w]),
                daemon=True,
            )
            for w in range(workers)
        ]
        for p in self.procs:
            p.start()
        for w in range(workers):
            for s in range(slots):
                self.free[w].put(s)
        self.host = torch.frombuffer(self.mm, dtype=torch.uint8)
        # the labels of each slot's batch, page-locked too: both copies are asynchronous
        self.labels = torch.zeros((workers * slots, batch), dtype=torch.int64, pin_memory=self.cuda)
        self.registered = False
        if self.cuda:  # page-lock the whole buffer once: copies from it need no staging
            err = int(torch.cuda.cudart().cudaHostRegister(self.host.data_ptr(), total, 0))
            if err != 0:
                raise RuntimeError(f"cudaHostRegister failed: cudaError {err}")
            self.registered = True

    def __len__(self) -> int:
        return self.n

    def _get(self, w: int, pending: deque[tuple[Any, int, int]]) -> Any:
        while True:
            try:
                msg = self.done[w].get(timeout=_GET_POLL_S)
            except queue.Empty:
                if not self.procs[w].is_alive():
                    raise RuntimeError(f"shm feed reader {w} died") from None
                if pending:  # let a copy finish so that its reader gets the slot back
                    self._release(pending, 1)
                continue
            if msg[0] == "error":
                raise RuntimeError(f"shm feed reader {w}: {msg[1]}")
            return msg

    def _release(self, pending: deque[tuple[Any, int, int]], keep: int) -> None:
        while len(pending) > keep or (pending and pending[0][0].query()):
            event, w, s = pending.popleft()
            event.synchronize()
            self.free[w].put(s)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for q in self.cmd:
            q.put(1)
        pending: deque[tuple[Any, int, int]] = deque()  # (event after the copy, reader, slot)
        try:
            for b in range(self.n):
                w = b % self.workers
                got, s, count, labels = self._get(w, pending)
                assert got == b, (got, b)
                start = (w * self.slots + s) * self.slot_bytes
                src = self.host[start : start + count * self.row].view(count, *self.shape)
                img = torch.empty(src.shape, dtype=src.dtype, device=self.device)
                img.copy_(src, non_blocking=self.cuda)
                host_lab = self.labels[w * self.slots + s, :count]
                host_lab.copy_(torch.as_tensor(labels, dtype=torch.int64))
                lab = torch.empty(count, dtype=torch.int64, device=self.device)
                lab.copy_(host_lab, non_blocking=self.cuda)
                if self.cuda:  # the slot (images and labels) is free once both copies are done
                    event = torch.cuda.Event()
                    event.record()
                    pending.append((event, w, s))
                    self._release(pending, self.slots - 1)
                else:
                    self.free[w].put(s)
                yield {"image": img, "label": lab}
        finally:
            self._release(pending, 0)

    def close(self) -> None:
        for q in self.cmd:
            q.put(None)
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
        if self.registered:
            torch.cuda.synchronize()
            torch.cuda.cudart().cudaHostUnregister(self.host.data_ptr())
            self.registered = False
        del self.host
        with contextlib.suppress(BufferError):  # a view still refers to it: goes with the process
            self.mm.close()
        os.close(self.fd)
