"""Lineage of a derived dataset version: its parents, the transform, and shard-level provenance.

Kept in the dataset entry's record under ``"lineage"`` (:meth:`Lineage.to_dict`), so every
provider stores it unchanged. ``tasks`` says, for each output shard group, which input shard
(by sha256) it came from and under which task id (the reuse key of incremental recompute);
``failures`` holds the samples the transform raised on when ``on_error="record"``.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgumentError
from .executors import InputShard, SampleFailure
from .transform import TransformIdentity

__all__ = ["Lineage", "ParentRef", "TaskLineage"]


@dataclass(frozen=True)
class ParentRef:
    """A parent dataset version: its reference (``frames@3``, or the URLs' first shard for a
    plain Dataset) and its entry CID (None for a Dataset outside an index)."""

    ref: str
    cid: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "cid": self.cid}

    @classmethod
    def from_dict(cls, data: Any) -> "ParentRef":
        if not isinstance(data, dict) or not isinstance(data.get("ref"), str):
            raise InvalidArgumentError(f"a lineage parent needs a 'ref' string: {data!r}")
        cid = data.get("cid")
        return cls(data["ref"], cid if isinstance(cid, str) else None)


@dataclass(frozen=True)
class TaskLineage:
    """One task's provenance: the input shards (url, sha256, count), the output shard URLs and
    sha256 digests, and the sample counts in and out."""

    task_id: str
    inputs: tuple[InputShard, ...]
    outputs: tuple[str, ...]
    output_sha256: tuple[str, ...]
    samples_in: int
    samples_out: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "inputs": [{"url": i.url, "sha256": i.sha256, "count": i.count} for i in self.inputs],
            "outputs": list(self.outputs),
            "output_sha256": list(self.output_sha256),
            "samples_in": self.samples_in,
            "samples_out": self.samples_out,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "TaskLineage":
        try:
            return cls(
                str(data["task_id"]),
                tuple(
                    InputShard(str(i["url"]), str(i["sha256"]), int(i["count"]))
                    for i in data["inputs"]
                ),
                tuple(str(u) for u in data["outputs"]),
                tuple(str(d) for d in data["output_sha256"]),
                int(data["samples_in"]),
                int(data["samples_out"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"malformed lineage task record: {exc}") from None


@dataclass(frozen=True)
class Lineage:
    """Where a derived version came from (see the module docstring)."""

    parents: tuple[ParentRef, ...]
    transform: TransformIdentity
    tasks: tuple[TaskLineage, ...]
    on_error: str = "raise"
    failures: tuple[SampleFailure, ...] = ()

    @property
    def input_digests(self) -> set[str]:
        return {i.sha256 for t in self.tasks for i in t.inputs}

    def to_dict(self) -> dict[str, Any]:
        return {
            "parents": [p.to_dict() for p in self.parents],
            "transform": self.transform.to_dict(),
            "tasks": [t.to_dict() for t in self.tasks],
            "on_error": self.on_error,
            "failures": [f.to_dict() for f in self.failures],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Lineage":
        if not isinstance(data, Mapping):
            raise InvalidArgumentError(f"a lineage record is a mapping, got {data!r}")
        try:
            return cls(
                tuple(ParentRef.from_dict(p) for p in data.get("parents") or ()),
                TransformIdentity.from_dict(data.get("transform")),
                tuple(TaskLineage.from_dict(t) for t in data.get("tasks") or ()),
                str(data.get("on_error") or "raise"),
                tuple(SampleFailure.from_dict(f) for f in data.get("failures") or ()),
            )
        except TypeError as exc:
            raise InvalidArgumentError(f"malformed lineage record: {exc}") from None
