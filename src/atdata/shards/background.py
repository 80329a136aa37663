"""One background thread that runs a shard writer's slow steps, in order, behind a bounded queue.

The producer (the thread calling ``ShardWriter.write``) submits tasks with the number of bytes
each holds; :meth:`Background.submit` blocks while the bytes queued (and being processed) would
pass ``max_bytes``, so memory stays bounded however slow the disk or the upload is. The first
task that raises stops the queue: the tasks after it are dropped (their ``on_drop`` runs, so
sinks they opened are aborted), and the error is raised to the producer by its next
:meth:`submit` or :meth:`drain`, with a note naming the shard it happened on.

The thread is not a daemon (queued commits finish before the interpreter exits) and ends itself
after ``idle_s`` seconds without work; the next submit starts a new one.
"""

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Background", "Task"]


@dataclass(slots=True)
class Task:
    """``run`` on the background thread; ``where`` names the shard (for the error note);
    ``size`` counts against the queue's bound until ``run`` returns; ``on_drop`` runs instead
    of ``run`` when an earlier task failed or the queue was cancelled."""

    run: Callable[[], None]
    where: str
    size: int = 0
    on_drop: Callable[[], None] | None = None


class Background:
    """A FIFO of :class:`Task` run by one thread, at most ``max_bytes`` queued at once."""

    def __init__(self, *, max_bytes: int = 64 << 20, idle_s: float = 1.0) -> None:
        self.max_bytes = max_bytes
        self.idle_s = idle_s
        self.peak_bytes = 0
        """The most bytes ever queued at once (tests check the bound with it)."""
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._tasks: deque[Task] = deque()
        self._queued = 0
        self._busy = False
        self._thread: threading.Thread | None = None
        self.waiting = threading.Event()
        """Set while the producer waits for room in the queue."""

    def submit(self, task: Task) -> None:
        """Queue ``task``; blocks while the queue is full; raises an earlier task's error."""
        with self._cond:
            while (
                self.error is None
                and self._queued > 0
                and self._queued + task.size > self.max_bytes
            ):
                self.waiting.set()
                self._cond.wait()
            self.waiting.clear()
            if self.error is not None:
                self._drop(task)
                raise self.error
            self._tasks.append(task)
            self._queued += task.size
            self.peak_bytes = max(self.peak_bytes, self._queued)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="atdata-shard-writer", daemon=False
                )
                self._thread.start()
            self._cond.notify_all()

    def drain(self) -> None:
        """Wait until every queued task ran; raise the first error if one failed."""
        with self._cond:
            while self._tasks or self._busy:
                self._cond.wait()
            if self.error is not None:
                raise self.error

    def cancel(self, *, keep: Callable[[Task], bool] = lambda task: False) -> None:
        """Drop the queued tasks (except those ``keep`` accepts) once the running one returned,
        and wait for the kept ones; never raises a task's error (the caller is already
        handling one of its own). The dropped tasks' ``on_drop`` run on the caller's thread."""
        with self._cond:
            dropped = [task for task in self._tasks if not keep(task)]
            self._tasks = deque(task for task in self._tasks if keep(task))
            self._queued -= sum(task.size for task in dropped)
            self._cond.notify_all()
            while self._tasks or self._busy:
                self._cond.wait()
        for task in dropped:
            self._drop(task)

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._tasks:
                    if not cond.wait(self.idle_s) and not self._tasks:
                        self._thread = None
                        return
                task = self._tasks.popleft()
                failed = self.error is not None
                self._busy = True
            if failed:
                self._drop(task)
            else:
                try:
                    task.run()
                except BaseException as exc:  # reported to the producer, never lost
                    exc.add_note(f"atdata: while writing shard {task.where}")
                    with cond:
                        self.error = exc
                    self._drop(task)
            with cond:
                self._busy = False
                self._queued -= task.size
                cond.notify_all()

    @staticmethod
    def _drop(task: Task) -> None:
        if task.on_drop is not None:
            with contextlib.suppress(Exception):  # cleanup after a failure reported itself
                task.on_drop()
