"""A ring of reused shared-memory segments per DataLoader worker, for the batches it sends.

A fresh shared-memory segment per batch costs the kernel zeroing its pages (~190 µs for one
256x256x3 image). Instead each worker keeps up to ``SLOTS`` segments and writes a batch's arrays
into free ones. A slot is *busy* from the moment the worker hands it out until the training
process has let go of every tensor (and view, and numpy array) over the storage it received:
a ``weakref.finalize`` on that storage (torch keeps the storage's Python object alive as long
as anything refers to the memory) clears the slot's byte in a control array shared by all
processes. A batch the user keeps therefore never changes; when every slot is busy the worker
allocates a fresh segment (it never waits), so keeping many batches only costs the zeroing again.

Nothing outlives the processes: segments are torch's (``file_descriptor`` strategy: unlinked
at once, freed when the last process maps them no more). A batch lost on the way (a worker
killed, a loader shut down) leaves its slot marked busy in a worker that is gone with it.
"""

import multiprocessing
import os
import threading
import uuid
import weakref
from typing import Any

import numpy as np
import torch

__all__ = ["RingBatch", "SlotRing", "new_control", "received"]

SLOTS = 8  # per worker
MAX_WORKERS = 64  # workers with a higher id allocate fresh segments
_CONTROLS: dict[str, tuple[int, Any]] = {}  # token -> (pid that made it, control array)
_LOCK = threading.Lock()


def new_control() -> tuple[str, Any]:
    """A control array (one byte per worker slot; 1 = busy) and the token that names it here."""
    token = uuid.uuid4().hex
    control = multiprocessing.RawArray("b", MAX_WORKERS * SLOTS)
    with _LOCK:
        _CONTROLS[token] = (os.getpid(), control)
    return token, control


class SlotRing:
    """One worker's slots: ``empty`` hands out arrays over free segments (fresh ones when none
    is free); :meth:`claim` says which slots a finished batch's tensors use."""

    def __init__(self, control: Any, token: str, worker: int) -> None:
        self._control = control
        self._token = token
        self._base = worker * SLOTS if worker < MAX_WORKERS else -1
        self._storages: list[Any] = [None] * SLOTS
        self._pending: list[int] = []
        self.allocations = 0  # segments made (reused slots are not counted)

    def empty(self, shape: tuple[int, ...], dtype: "np.dtype[Any]") -> "np.ndarray[Any, Any]":
        try:
            tdtype = torch.from_numpy(np.empty(0, dtype)).dtype
        except (TypeError, ValueError):
            return np.empty(shape, dtype)
        used = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        flat = torch.empty(0, dtype=torch.uint8).set_(self._slot(max(used, 1)))[:used]
        return flat.view(tdtype).reshape(shape).numpy()

    def _slot(self, nbytes: int) -> Any:
        new_shared: Any = torch.UntypedStorage._new_shared  # what torch's default_collate uses
        if self._base >= 0:
            free = [i for i in range(SLOTS) if i not in self._pending]
            free = [i for i in free if self._control[self._base + i] == 0]
            exact = [i for i in free if _size(self._storages[i]) == nbytes]
            pick = exact[0] if exact else (free[0] if free else None)
            if pick is not None:
                if _size(self._storages[pick]) != nbytes:
                    self._storages[pick] = new_shared(nbytes)
                    self.allocations += 1
                self._control[self._base + pick] = 1
                self._pending.append(pick)
                return self._storages[pick]
        self.allocations += 1
        return new_shared(nbytes)

    def claim(self, batch: dict[str, Any]) -> Any:
        """``batch`` as a :class:`RingBatch` naming the slots its tensors use; slots handed out
        but not used by it (a batch that took the checked path) are free again."""
        pending, self._pending = self._pending, []
        if not pending:
            return batch
        by_ptr = {self._storages[i].data_ptr(): i for i in pending}
        marks = []
        for name, value in batch.items():
            if isinstance(value, torch.Tensor):
                slot = by_ptr.pop(value.untyped_storage().data_ptr(), None)
                if slot is not None:
                    marks.append((name, self._base + slot))
        for slot in by_ptr.values():
            self._control[self._base + slot] = 0
        return RingBatch(batch, token=self._token, marks=marks)


def _size(storage: Any) -> int:
    return -1 if storage is None else int(storage.nbytes())


class RingBatch(dict[str, Any]):
    """A worker's batch whose tensors live in ring slots; it unpickles (in the training
    process) as a plain dict, with a finalizer on each slot tensor's storage freeing the slot."""

    def __init__(self, batch: dict[str, Any], *, token: str = "", marks: Any = ()) -> None:
        super().__init__(batch)
        self.token = token
        self.marks = list(marks)

    def __copy__(self) -> "RingBatch":
        # torch's default_convert (the collate_fn of DataLoader(batch_size=None)) copies the
        # batch in the worker: the copy keeps the marks (pickling is for the trip to the parent)
        return RingBatch(self, token=self.token, marks=self.marks)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return received, (dict(self), self.token, self.marks)


def received(batch: dict[str, Any], token: str, marks: list[tuple[str, int]]) -> dict[str, Any]:
    """Unpickling a :class:`RingBatch`: free each slot when its storage is let go of here."""
    owner, control = _CONTROLS.get(token, (-1, None))
    if owner == os.getpid():  # elsewhere (a worker copying it) the slots simply stay busy
        for name, index in marks:
            weakref.finalize(batch[name].untyped_storage(), _free, control, index)
    return batch


def _free(control: Any, index: int) -> None:
    control[index] = 0
