"""How derive work is spread out: the per-shard task, its result, and the executors that run them.

A derive is cut into :class:`DeriveTask` values, one per input shard, in a fixed order. A task
is self-contained and picklable: it names its input shard (URL and sha256, with a
:class:`~atdata.Dataset` over that one shard to read it), the store location its output shards
are written to, the transform, and the error policy. A *work function* (a module-level
function, so a process pool or Ray can ship it by reference; the one atdata uses is
:func:`atdata.derive.work.run_task`) turns a task into a :class:`TaskResult`: the output
:class:`~atdata.ShardInfo` values, sample counts, the errors recorded, and the input digest
the outputs came from.

An :class:`Executor` runs tasks with a work function and yields results in any order (the
driver puts them back in task order by ``TaskResult.index``). Executors never commit anything:
the driver commits the entry once, after every task succeeded. A task that raises makes
``run`` raise (the driver then abandons the whole derive; outputs of tasks that finished are
kept in the store for the next run, see :mod:`atdata.derive.journal`).
"""

import concurrent.futures
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..errors import InvalidArgumentError
from ..shards.info import ShardInfo

if TYPE_CHECKING:
    from ..dataset import Dataset
    from .transform import Transform

__all__ = [
    "DeriveTask",
    "Executor",
    "InProcessExecutor",
    "InputShard",
    "OnError",
    "ProcessPoolExecutor",
    "SampleFailure",
    "TaskResult",
    "WorkFunction",
    "executor_named",
]

OnError = Literal["raise", "record"]


@dataclass(frozen=True)
class InputShard:
    """One input shard, named by URL and identified by content (sha256 of its bytes)."""

    url: str
    sha256: str
    count: int


@dataclass(frozen=True)
class DeriveTask:
    """One unit of derive work: the input shard(s), where outputs go, what to run, how to fail.

    ``index`` is the task's place in the derive's fixed order; ``task_id`` is a digest of the
    transform identity, the input digests and the output options (equal ids give equal bytes).
    ``reader`` reads exactly ``inputs`` (a Dataset over those shards, with the source index's
    integrity checks). ``output_pattern`` is a ``%d`` shard pattern private to this task inside
    the repository's store; ``open_sink`` is the store's ``open_sink`` (how bytes get there).
    """

    index: int
    task_id: str
    inputs: tuple[InputShard, ...]
    reader: "Dataset[Any]"
    output_pattern: str
    open_sink: Callable[[str], Any]
    transform: "Transform"
    on_error: OnError = "raise"
    maxcount: int = 10_000


@dataclass(frozen=True)
class SampleFailure:
    """A sample the transform raised on (kept with ``on_error="record"``)."""

    key: str
    shard: str
    error_type: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {
            "key": self.key,
            "shard": self.shard,
            "error_type": self.error_type,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "SampleFailure":
        keys = ("key", "shard", "error_type", "message")
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in keys):
            raise InvalidArgumentError(f"a derive error record needs {keys} strings: {data!r}")
        return cls(*(data[k] for k in keys))


@dataclass(frozen=True)
class TaskResult:
    """What one task produced: its output shards (possibly none: everything filtered out),
    how many samples went in and came out, and the failures recorded."""

    index: int
    task_id: str
    inputs: tuple[InputShard, ...]
    outputs: tuple[ShardInfo, ...]
    samples_in: int
    samples_out: int
    failures: tuple[SampleFailure, ...] = ()
    #: the type of the samples written (None when nothing was written)
    sample_type: type | None = field(default=None, compare=False)


WorkFunction = Callable[[DeriveTask], TaskResult]


class Executor(Protocol):
    """Runs derive tasks; yields one result per task, in any order; raises if a task raised."""

    def run(self, tasks: Sequence[DeriveTask], work: WorkFunction) -> Iterator[TaskResult]: ...


class InProcessExecutor:
    """Runs the tasks one after another in this process."""

    def run(self, tasks: Sequence[DeriveTask], work: WorkFunction) -> Iterator[TaskResult]:
        for task in tasks:
            yield work(task)

    def __repr__(self) -> str:
        return "InProcessExecutor()"


class ProcessPoolExecutor:
    """Runs the tasks in a pool of ``workers`` local processes (default: the CPU count).

    Tasks and the work function are pickled to the workers, so the transform must be
    importable by reference (a module-level function or lens, not a lambda or closure).
    ``mp_context`` picks the start method: by default ``"forkserver"`` where there is one (workers
    fork from a single-threaded server that has atdata imported already: no threads forked, no
    second import of atdata per worker), else ``"spawn"``.
    """

    def __init__(self, workers: int | None = None, *, mp_context: str | None = None) -> None:
        import multiprocessing

        if workers is not None and workers < 1:
            raise InvalidArgumentError(f"workers must be at least 1, got {workers}")
        self.workers = workers or os.cpu_count() or 1
        if mp_context is None:
            methods = multiprocessing.get_all_start_methods()
            mp_context = "forkserver" if "forkserver" in methods else "spawn"
        self.mp_context = mp_context

    def run(self, tasks: Sequence[DeriveTask], work: WorkFunction) -> Iterator[TaskResult]:
        if not tasks:
            return
        import multiprocessing

        ctx = multiprocessing.get_context(self.mp_context)
        if self.mp_context == "forkserver":
            ctx.set_forkserver_preload(["atdata", "atdata.derive.work", "atdata.index"])
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=min(self.workers, len(tasks)), mp_context=ctx
        ) as pool:
            futures = [pool.submit(work, task) for task in tasks]
            try:
                for done in concurrent.futures.as_completed(futures):
                    yield done.result()
            finally:
                for f in futures:
                    f.cancel()

    def __repr__(self) -> str:
        return f"ProcessPoolExecutor(workers={self.workers})"


def executor_named(
    name: str, workers: int | None = None, *, ray_address: str | None = None
) -> Executor:
    """The executor a CLI word names: ``inprocess``, ``process`` (a local pool) or ``ray``
    (``ray_address``: the cluster to join; None: ``$RAY_ADDRESS``, else a local Ray)."""
    if ray_address is not None and name != "ray":
        raise InvalidArgumentError(f"a Ray address needs the ray executor, not {name!r}")
    if name in ("inprocess", "in-process", "local"):
        return InProcessExecutor()
    if name in ("process", "processes", "pool"):
        return ProcessPoolExecutor(workers)
    if name == "ray":
        import importlib

        module = importlib.import_module(".ray_executor", __package__)
        made: Executor = module.RayExecutor(ray_address, num_cpus=workers)
        return made
    raise InvalidArgumentError(f"unknown executor {name!r}: use 'inprocess', 'process' or 'ray'")
