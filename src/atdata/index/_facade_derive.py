"""``Index.derive``: a new dataset version computed from another, with lineage, incremental
recompute, recorded failures and pluggable executors (see :mod:`atdata.derive`).

The driver here plans (:func:`atdata.derive.plan.make_plan`), carries over the outputs of
reused tasks (from the previous derived version, or from the journal of a derive that was
killed), runs the rest on the executor, and commits one entry when every task finished. If
anything fails nothing is committed; outputs of tasks that finished stay in the store, listed
in the journal, for the next run (the pending version's files are removed by ``gc`` later).
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from ..derive.executors import (
    DeriveTask,
    Executor,
    InProcessExecutor,
    InputShard,
    OnError,
    SampleFailure,
    TaskResult,
)
from ..derive.journal import Journal
from ..derive.lineage import Lineage, ParentRef, TaskLineage
from ..derive.plan import DerivePlan, PlannedInput, make_plan, task_ids_for
from ..derive.transform import Transform, as_transform
from ..derive.work import KEY_SCHEME, run_task
from ..errors import AtdataError, InvalidArgumentError, SchemaError
from ..manifest.format import MANIFEST_SUFFIX
from ..shards.info import ShardInfo
from ..shards.offsets import OFFSETS_SUFFIX
from ..stores.base import DataStore, validate_dataset_name
from . import datasets as ds_ops
from ._facade_base import IndexBase, schema_of
from ._facade_datasets import _check_annotations, _EntryShardOpener, _store_of
from .entries import DatasetEntry
from .ingest import copy_shard, inspect_shard, normalize_url
from .repository import Repository

if TYPE_CHECKING:
    from ..dataset import Dataset

__all__ = ["DeriveMethods"]

_SIDECARS = (OFFSETS_SUFFIX, MANIFEST_SUFFIX)

_Source = tuple[list[ParentRef], list[InputShard], list["Dataset[Any]"]]


class DeriveMethods(IndexBase):
    """``derive``, ``lineage`` and ``derived_from`` (part of ``Index``)."""

    if TYPE_CHECKING:  # provided by the other mixins in the assembled Index

        def entry(self, ref: str) -> DatasetEntry: ...
        def get_schema_type(self, ref: str) -> type: ...
        def history(self, name: str, *, repo: str | None = None) -> list[DatasetEntry]: ...
        @property
        def datasets(self) -> Any: ...

    @overload
    def derive(
        self,
        source: "str | Dataset[Any]",
        transform: Any,
        name: str,
        *,
        executor: Executor | None = ...,
        on_error: OnError = ...,
        version: str = ...,
        batch_size: int | None = ...,
        dry_run: Literal[False] = ...,
        maxcount: int = ...,
        description: str | None = ...,
        metadata: Mapping[str, Any] | None = ...,
        tags: Sequence[str] = ...,
        license: str | None = ...,
        repo: str | None = ...,
        on_task: Callable[[TaskResult], None] | None = ...,
    ) -> DatasetEntry: ...

    @overload
    def derive(
        self,
        source: "str | Dataset[Any]",
        transform: Any,
        name: str,
        *,
        executor: Executor | None = ...,
        on_error: OnError = ...,
        version: str = ...,
        batch_size: int | None = ...,
        dry_run: Literal[True],
        maxcount: int = ...,
        description: str | None = ...,
        metadata: Mapping[str, Any] | None = ...,
        tags: Sequence[str] = ...,
        license: str | None = ...,
        repo: str | None = ...,
        on_task: Callable[[TaskResult], None] | None = ...,
    ) -> DerivePlan: ...

    def derive(
        self,
        source: "str | Dataset[Any]",
        transform: Any,
        name: str,
        *,
        executor: Executor | None = None,
        on_error: OnError = "raise",
        version: str = "",
        batch_size: int | None = None,
        dry_run: bool = False,
        maxcount: int = 10_000,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        license: str | None = None,
        repo: str | None = None,
        on_task: Callable[[TaskResult], None] | None = None,
    ) -> "DatasetEntry | DerivePlan":
        """Compute a new version of ``name`` from ``source`` with ``transform``; see the
        README section "Derived datasets and lineage" and docs/format.md (lineage, derived keys).

        ``source``: an index reference (``"frames@3"``) or a :class:`~atdata.Dataset`.
        ``transform``: a lens, or a module-level function of one sample returning a sample, a
        list of samples or None (filtered out); with ``batch_size`` a function of a list of
        samples returning a list. ``version`` is your version string for the transform (part of
        its identity). ``executor``: :class:`~atdata.derive.InProcessExecutor` (default),
        :class:`~atdata.derive.ProcessPoolExecutor`, or Ray's. ``on_error="record"`` keeps going
        when the transform raises and records each failure in the entry's lineage.
        ``dry_run=True`` returns the :class:`~atdata.derive.plan.DerivePlan` and does nothing.
        ``on_task`` is called with each finished (or carried-over) task, for progress.
        """
        validate_dataset_name(name)
        _check_annotations(metadata, tags)
        if on_error not in ("raise", "record"):
            raise InvalidArgumentError(f"on_error must be 'raise' or 'record', not {on_error!r}")
        if maxcount < 1:
            raise InvalidArgumentError("maxcount must be at least 1")
        spec = as_transform(transform, batch_size=batch_size, version=version)
        identity = spec.identity()
        target = self.repository(repo)
        parents, inputs, readers = self._derive_source(source)
        options = f"maxcount={maxcount};on_error={on_error};keys={KEY_SCHEME}"
        task_ids = task_ids_for(identity.digest, inputs, options)
        previous = ds_ops.get_entry(target, name, None)
        prior = _lineage_of(previous)
        plan = make_plan(
            inputs,
            task_ids,
            prior,
            previous.ref if previous is not None else None,
            identity.digest,
        )
        if dry_run:
            return plan
        store = _store_of(target)
        journal = Journal(target.name, name)
        version_no, write_id = ds_ops.reserve_version(target, name)
        base = store.shard_pattern(name, version_no, write_id)
        results: list[TaskResult] = []
        ran = False
        try:
            to_run: list[DeriveTask] = []
            for planned in plan.inputs:
                pattern = _task_pattern(base, planned.index)
                carried = _carry_over(planned, previous, journal, store, pattern)
                if carried is not None:
                    results.append(carried)
                    if on_task is not None:
                        on_task(carried)
                    continue
                to_run.append(
                    DeriveTask(
                        index=planned.index,
                        task_id=planned.task_id,
                        inputs=(planned.shard,),
                        reader=readers[planned.index],
                        output_pattern=pattern,
                        open_sink=store.open_sink,
                        transform=spec,
                        on_error=on_error,
                        maxcount=maxcount,
                    )
                )
            for result in (executor or InProcessExecutor()).run(to_run, run_task):
                journal.record(result)
                ran = True
                results.append(result)
                if on_task is not None:
                    on_task(result)
            results.sort(key=lambda r: r.index)
            entry = _commit(
                target,
                name,
                version_no,
                spec=spec,
                results=results,
                parents=parents,
                on_error=on_error,
                description=description,
                metadata=metadata,
                tags=tags,
                license=license,
            )
        except BaseException:
            if not ran:  # nothing finished that a later run could reuse
                ds_ops.release_version(target, name, version_no, write_id)
            raise
        journal.clear()
        return entry

    def lineage(self, ref: str) -> Lineage | None:
        """The lineage recorded in a dataset version (None: it was not derived)."""
        return _lineage_of(self.entry(ref))

    def derived_from(self, name: str) -> list[DatasetEntry]:
        """Every dataset version (in any repository) whose lineage names a version of ``name``
        as a parent."""
        found = []
        for latest in self.datasets:
            for entry in self.history(f"atdata://{latest.repo}/dataset/{latest.name}"):
                lineage = _lineage_of(entry)
                if lineage and any(_parent_name(p.ref) == name for p in lineage.parents):
                    found.append(entry)
        return found

    def _derive_source(self, source: Any) -> _Source:
        """The parents, input shards (with digests) and one-shard readers of ``source``."""
        from ..dataset import Dataset

        if isinstance(source, str):
            entry = self.entry(source)
            sample_type = (
                self.get_schema_type(entry.schema_ref) if entry.schema_ref is not None else None
            )
            store = self._repos[entry.repo].store
            inputs = [_input(s) for s in entry.shards]
            readers: list[Dataset[Any]] = [
                Dataset([s.url], sample_type, source_factory=_EntryShardOpener(store, [s]))
                for s in entry.shards
            ]
            return [ParentRef(entry.ref, entry.cid)], inputs, readers
        if isinstance(source, Dataset):
            known = {s.url: s for s in getattr(source, "shard_infos", ())}
            infos = [known.get(u) or inspect_shard(normalize_url(u)) for u in source.urls]
            own = [Dataset([s.url], source.sample_type) for s in infos]
            ref = infos[0].url if infos else "(empty)"
            return [ParentRef(ref, None)], [_input(s) for s in infos], list(own)
        raise InvalidArgumentError(
            f"derive's source is an index reference ('frames@3') or a Dataset, got {source!r}"
        )


def _input(shard: ShardInfo) -> InputShard:
    return InputShard(shard.url, shard.checksum.digest, shard.count)


def _parent_name(ref: str) -> str:
    return ref.rpartition("@")[0] if "@" in ref else ref


def _lineage_of(entry: DatasetEntry | None) -> Lineage | None:
    if entry is None or not entry.lineage:
        return None
    try:
        return Lineage.from_dict(entry.lineage)
    except InvalidArgumentError:
        return None  # a malformed lineage is not trusted for reuse


def _task_pattern(base: str, index: int) -> str:
    """The output pattern of task ``index``: the store's ``%06d`` pattern with the task number
    fixed and a ``%03d`` for the task's own rollover."""
    head, placeholder, tail = base.rpartition("%06d")
    if not placeholder:
        raise InvalidArgumentError(f"store pattern {base!r} has no %06d placeholder")
    return f"{head}{index:06d}-%03d{tail}"


def _carry_over(
    planned: PlannedInput,
    previous: DatasetEntry | None,
    journal: Journal,
    store: DataStore,
    pattern: str,
) -> TaskResult | None:
    """The task's result without running it: the previous version's outputs (reused) or a
    killed run's (journalled), copied into this version; None when it must run."""
    found: TaskResult | None = None
    if planned.reused_from is not None and previous is not None:
        done = planned.reused_from
        by_url = {s.url: s for s in previous.shards}
        outs = [by_url.get(u) for u in done.outputs]
        if all(o is not None for o in outs):
            failures: tuple[SampleFailure, ...] = ()
            prior = _lineage_of(previous)
            if prior is not None:
                urls = {i.url for i in done.inputs}
                failures = tuple(f for f in prior.failures if f.shard in urls)
            found = TaskResult(
                planned.index,
                planned.task_id,
                (planned.shard,),
                tuple(o for o in outs if o is not None),
                done.samples_in,
                done.samples_out,
                tuple(
                    SampleFailure(f.key, planned.shard.url, f.error_type, f.message)
                    for f in failures
                ),
            )
    if found is None:
        found = journal.find(planned.task_id, planned.index)
        if found is not None and store.verify(list(found.outputs)):
            found = None  # gone or changed since: run it again
    if found is None:
        return None
    try:
        copies = tuple(_carry(store, s, pattern % n) for n, s in enumerate(found.outputs))
    except AtdataError:
        return None
    return TaskResult(
        planned.index,
        planned.task_id,
        (planned.shard,),
        copies,
        found.samples_in,
        found.samples_out,
        found.failures,
    )


def _carry(store: DataStore, shard: ShardInfo, location: str) -> ShardInfo:
    """``shard`` at ``location``: hard-linked where the store can (the bytes are the recorded
    ones: readers check them against the checksum), else copied and re-hashed."""
    link = getattr(store, "link_shard", None)
    if callable(link) and store.owns(shard.url) and link(shard.url, location, _SIDECARS):
        return dataclasses.replace(shard, url=location)
    return copy_shard(shard.url, location, store.open_sink)


def _commit(
    target: Repository,
    name: str,
    version: int,
    *,
    spec: Transform,
    results: list[TaskResult],
    parents: list[ParentRef],
    on_error: str,
    **annotations: Any,
) -> DatasetEntry:
    shards = [s for r in results for s in r.outputs]
    sample_type = spec.output_type or next((r.sample_type for r in results if r.sample_type), None)
    if not shards:
        raise SchemaError(f"derive of {name!r} wrote no samples: the transform filtered out all")
    if sample_type is None:  # every task was carried over: the previous schema stands
        previous = ds_ops.get_entry(target, name, None)
        schema_ref = previous.schema_ref if previous is not None else None
        schema: Any = None
    else:
        schema, schema_ref = schema_of(sample_type), None
    lineage = Lineage(
        tuple(parents),
        spec.identity(),
        tuple(
            TaskLineage(
                r.task_id,
                r.inputs,
                tuple(s.url for s in r.outputs),
                tuple(s.checksum.digest for s in r.outputs),
                r.samples_in,
                r.samples_out,
            )
            for r in results
        ),
        on_error,
        tuple(f for r in results for f in r.failures),
    )
    return ds_ops.commit_entry(
        target,
        name=name,
        version=version,
        schema=schema,
        schema_ref=schema_ref,
        shards=shards,
        stored=True,
        lineage=lineage.to_dict(),
        **annotations,
    )
