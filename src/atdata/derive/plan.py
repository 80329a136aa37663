"""The change plan of a derive: which input shards are new, changed or reused, which outputs go.

An input shard is **reused** when the previous derived version has a task with the same task
id (same transform identity, same input bytes, same output options): its output shards are
carried over without running the transform. Otherwise it is **changed** when the previous
version had an input of the same file name with other bytes, and **new** when it had none.
Previous tasks whose input (by bytes or by file name) is no longer in the source are
**dropped**. With another
transform identity nothing is reused (``transform_changed``).
"""

import hashlib
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field

from .executors import InputShard
from .lineage import Lineage, TaskLineage

__all__ = ["DerivePlan", "PlannedInput", "make_plan", "task_id_for", "task_ids_for"]


def task_id_for(identity_digest: str, inputs: Sequence[InputShard], options: str) -> str:
    """The reuse key of a task: sha256 over the transform digest, the inputs' digests and the
    output options."""
    h = hashlib.sha256(f"{identity_digest}\0{options}\0".encode())
    for shard in inputs:
        h.update(shard.sha256.encode() + b"\0")
    return h.hexdigest()


def task_ids_for(identity_digest: str, inputs: Sequence[InputShard], options: str) -> list[str]:
    """The task id of each input shard (one task a shard), all distinct: a shard whose bytes
    equal an earlier input's gets its occurrence number in its options (``;copy=1``, ...).

    A task's output sample keys start with its task id (see :mod:`atdata.derive.work`), so
    distinct ids keep keys unique across the derived dataset, and an id that depends only on
    the transform, the options and the input's bytes (and occurrence) keeps them the same
    on every executor and in reused outputs."""
    seen: dict[str, int] = {}
    ids = []
    for shard in inputs:
        copy = seen.get(shard.sha256, 0)
        seen[shard.sha256] = copy + 1
        own = f"{options};copy={copy}" if copy else options
        ids.append(task_id_for(identity_digest, [shard], own))
    return ids


@dataclass(frozen=True)
class PlannedInput:
    """One input shard and what the derive does with it: "new", "changed" or "reused"."""

    index: int
    shard: InputShard
    task_id: str
    status: str
    reused_from: TaskLineage | None = None


@dataclass
class DerivePlan:
    """Every input shard with its status, and the previous tasks dropped."""

    inputs: list[PlannedInput]
    dropped: list[TaskLineage] = field(default_factory=list)
    previous: str | None = None
    transform_changed: bool = False

    def of(self, status: str) -> list[PlannedInput]:
        return [p for p in self.inputs if p.status == status]

    def summary(self) -> dict[str, dict[str, int]]:
        """Shards and samples per status (``{"new": {"shards": 2, "samples": 200}, ...}``)."""
        out: dict[str, dict[str, int]] = {}
        for status in ("new", "changed", "reused"):
            picked = self.of(status)
            out[status] = {"shards": len(picked), "samples": sum(p.shard.count for p in picked)}
        out["dropped"] = {
            "shards": len(self.dropped),
            "samples": sum(t.samples_in for t in self.dropped),
        }
        return out

    def describe(self) -> str:
        """The plan as the lines ``atdata derive --dry-run`` prints."""
        head = f"previous version: {self.previous or '(none)'}"
        if self.transform_changed:
            head += " (transform changed: everything is recomputed)"
        lines = [head]
        for status, row in self.summary().items():
            lines.append(f"  {status:<8} {row['shards']:>6} shards {row['samples']:>10} samples")
        return "\n".join(lines)


def make_plan(
    inputs: Sequence[InputShard],
    task_ids: Sequence[str],
    previous: Lineage | None,
    previous_ref: str | None,
    identity_digest: str,
) -> DerivePlan:
    """Compare the inputs (with their task ids) to the previous derived version's lineage."""
    if previous is None:
        planned = [
            PlannedInput(i, s, t, "new")
            for i, (s, t) in enumerate(zip(inputs, task_ids, strict=True))
        ]
        return DerivePlan(planned, previous=previous_ref)
    by_task = {t.task_id: t for t in previous.tasks}
    names = {posixpath.basename(i.url): i.sha256 for t in previous.tasks for i in t.inputs}
    planned = []
    for i, (shard, task_id) in enumerate(zip(inputs, task_ids, strict=True)):
        done = by_task.get(task_id)
        if done is not None:
            planned.append(PlannedInput(i, shard, task_id, "reused", done))
        elif posixpath.basename(shard.url) in names:
            planned.append(PlannedInput(i, shard, task_id, "changed"))
        else:
            planned.append(PlannedInput(i, shard, task_id, "new"))
    present = {s.sha256 for s in inputs} | {posixpath.basename(s.url) for s in inputs}
    changed = previous.transform.digest != identity_digest
    dropped = [
        t
        for t in previous.tasks
        if not any(i.sha256 in present or posixpath.basename(i.url) in present for i in t.inputs)
    ]
    return DerivePlan(planned, dropped, previous_ref, changed)
