"""The work function every executor runs: one :class:`DeriveTask` in, one :class:`TaskResult` out.

:func:`run_task` is module-level so process pools and Ray ship it by reference. It reads the
task's input shard in storage order, applies the transform, and writes what comes out to the
task's private output pattern in the store with the ordinary :class:`ShardWriter`.

Output sample keys are ``<first 32 hex digits of the task id>-<running number in the task>``
(:data:`KEY_SCHEME`): unique across the derived dataset (task ids are distinct, see
:func:`~atdata.derive.plan.task_ids_for`), and a task's bytes still depend only on its input
bytes, its occurrence among equal inputs, the transform and the options: the same on every
executor, and reusable by later derives.
"""

from collections.abc import Iterator
from typing import Any

from ..errors import AtdataError, InvalidArgumentError, TransformError
from ..manifest.build import ManifestBuilder
from ..shards.writer import ShardWriter
from .executors import DeriveTask, SampleFailure, TaskResult

__all__ = ["KEY_SCHEME", "run_task"]

#: The name of the output key scheme; part of every task's options (so of its id): outputs
#: written under another scheme are never reused into a version written under this one.
KEY_SCHEME = "task32"


def run_task(task: DeriveTask) -> TaskResult:
    """Run one task: transform its input shard's samples and write the outputs to the store."""
    failures: list[SampleFailure] = []
    counts = {"in": 0, "out": 0}
    first_type: list[type] = []
    writer: ShardWriter[Any] = ShardWriter(
        task.output_pattern,
        maxcount=task.maxcount,
        key_prefix=f"{task.task_id[:32]}-",
        sink_factory=task.open_sink,
        sidecar_builder=ManifestBuilder,
    )
    with writer:
        for sample in _outputs(task, failures, counts):
            if not first_type:
                first_type.append(type(sample))
            writer.write(sample)
            counts["out"] += 1
    return TaskResult(
        index=task.index,
        task_id=task.task_id,
        inputs=task.inputs,
        outputs=tuple(writer.shards),
        samples_in=counts["in"],
        samples_out=counts["out"],
        failures=tuple(failures),
        sample_type=first_type[0] if first_type else None,
    )


def _outputs(
    task: DeriveTask, failures: list[SampleFailure], counts: dict[str, int]
) -> Iterator[Any]:
    """The transform's output samples, in input order (failures recorded or raised)."""
    fn, size = task.transform.fn, task.transform.batch_size
    batch: list[Any] = []
    first = 0
    for position, sample in enumerate(task.reader):
        counts["in"] += 1
        if size is None:
            yield from _apply(task, failures, [sample], position, lambda s: fn(s[0]))
            continue
        if not batch:
            first = position
        batch.append(sample)
        if len(batch) == size:
            yield from _apply(task, failures, batch, first, fn)
            batch = []
    if batch:
        yield from _apply(task, failures, batch, first, fn)


def _apply(
    task: DeriveTask, failures: list[SampleFailure], samples: list[Any], first: int, call: Any
) -> Iterator[Any]:
    try:
        out = call(samples)
    except Exception as exc:  # a transform may raise anything: here it is data
        keys = _keys(task)
        named = [
            keys[first + n] if first + n < len(keys) else f"#{first + n}"
            for n in range(len(samples))
        ]
        if task.on_error != "record":
            what = f"sample {named[0]!r}" if len(named) == 1 else f"samples {named[0]!r}..."
            raise TransformError(
                f"the transform raised on {what} of shard {task.inputs[0].url!r}: "
                f"{type(exc).__qualname__}: {exc} (on_error='record' keeps going and records "
                "each failure; nothing was committed)"
            ) from exc
        shard = task.inputs[0].url
        for key in named:
            failures.append(SampleFailure(key, shard, type(exc).__qualname__, str(exc)[:500]))
        return
    if out is None:
        return
    if isinstance(out, list | tuple):
        yield from out
        return
    if task.transform.batch_size is not None:
        raise InvalidArgumentError(
            f"a batch transform must return a list of samples (or None), got {type(out).__name__}"
        )
    yield out


def _keys(task: DeriveTask) -> list[str]:
    """The input shard's sample keys, in storage order (read only when a failure is recorded)."""
    try:
        keys = task.reader.select(["__key__"])["__key__"]
    except AtdataError:
        return []
    return [str(k) for k in keys]
