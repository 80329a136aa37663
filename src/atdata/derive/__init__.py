"""Derived datasets: per-shard tasks, executors, transform identity, lineage and change plans.

``Index.derive`` (in :mod:`atdata.index`) drives these: it plans which input shards need work,
runs one :class:`DeriveTask` per shard on an :class:`Executor`, and commits one entry with its
:class:`Lineage`.
"""

from .executors import (
    DeriveTask,
    Executor,
    InProcessExecutor,
    InputShard,
    ProcessPoolExecutor,
    SampleFailure,
    TaskResult,
    executor_named,
)
from .transform import Transform, TransformIdentity, as_transform
from .work import run_task

__all__ = [
    "DeriveTask",
    "Executor",
    "InProcessExecutor",
    "InputShard",
    "ProcessPoolExecutor",
    "SampleFailure",
    "TaskResult",
    "Transform",
    "TransformIdentity",
    "as_transform",
    "executor_named",
    "run_task",
]
