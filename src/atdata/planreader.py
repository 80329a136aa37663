"""Turning positions of a plan into samples or batches (shared by ``Loader`` and ``atdata.torch``).

A batch is read by position: the plan maps positions to (shard, member), :class:`SlotReader`
slices the bodies out of the shards, and without map/filter stages the bodies go through the
fast batch path (one msgpack decode per body, whole columns validated and stacked). With stages,
samples are decoded one by one, transformed and filtered, so a batch may come out shorter than
its positions.
"""

import logging
import warnings
from collections.abc import Iterator
from functools import partial
from typing import Any, Protocol

import msgpack
import numpy as np

from ._redact import Redacted, redact
from .batch import Collator, collate_maps, collate_samples_checked
from .codec import codec_for, unpack_map
from .errors import AtdataWarning, SchemaError, ShardError
from .groupslots import GroupSlotReader
from .media.pool import Allocator
from .members import member_layout
from .plan import EpochOrder, Layout
from .sample import DictSample
from .shards.reader import max_stream_member
from .shards.shardset import ShardSet
from .slots import SlotReader


class Readable(Protocol):
    """What a plan reads from (a :class:`~atdata.Dataset`; not imported here, to keep layers)."""

    @property
    def on_error(self) -> str: ...

    @property
    def _stages(self) -> tuple[Any, ...]: ...

    @property
    def shards(self) -> ShardSet: ...

    @property
    def sample_type(self) -> type[Any]: ...

    @property
    def _source_type(self) -> type[Any]: ...


_ZERO_COPY_MIN = 1 << 16

__all__ = [
    "DROPPED",
    "PlanReader",
    "Progress",
    "Readable",
    "decode_bodies",
    "epoch_order",
    "iter_layout",
    "iter_sequential",
    "located",
    "run_stages",
    "skip_or_raise",
]

_log = logging.getLogger(__name__)

#: What :func:`run_stages` returns for a sample that a filter dropped.
DROPPED: Any = object()


def run_stages(stages: Any, sample: Any) -> Any:
    """``sample`` after a dataset's ``map`` and ``filter`` stages, in order; :data:`DROPPED`
    when a filter refuses it (the later stages are not run)."""
    for stage in stages:
        if stage.kind == "map":
            sample = stage.fn(sample)
        elif not stage.fn(sample):
            return DROPPED
    return sample


def skip_or_raise(on_error: str, exc: Exception, *, stacklevel: int) -> None:
    """Apply a dataset's ``on_error`` policy to a bad sample or shard: ``"raise"`` it, ``"warn"``
    (an AtdataWarning, ``stacklevel`` as for :func:`warnings.warn`) and skip it, or skip it."""
    if on_error == "raise":
        raise exc
    _log.warning("skipped (on_error=%r): %s", on_error, Redacted(exc))
    if on_error == "warn":
        warnings.warn(f"skipped: {exc}", AtdataWarning, stacklevel=stacklevel + 1)


def epoch_order(
    dataset: Readable,
    *,
    seed: int | None,
    epoch: int,
    window: int,
    window_bytes: int,
    length: int | None = None,
    resample: bool = False,
) -> EpochOrder:
    """The order of one epoch of ``dataset`` (counts and sizes from its offset indexes)."""
    shards = dataset.shards
    first = dataset._stages[0].fn if dataset._stages else None
    pick = getattr(first, "selector", None)
    counts = _readable_counts(shards, dataset.on_error, pick(shards) if callable(pick) else None)
    return EpochOrder(
        counts,
        lambda i: shards.offsets(i).sizes if counts[i] else np.zeros(0, dtype=np.int64),
        seed=seed,
        epoch=epoch,
        window=window,
        window_bytes=window_bytes,
        length=length,
        resample=resample,
    )


def _readable_counts(shards: ShardSet, on_error: str, selector: Any = None) -> list[int]:
    """Each shard's sample count; under ``on_error`` "skip"/"warn" a shard whose offsets cannot
    be read (no sidecar and a scan that fails: truncated or not a tar) counts as empty, so the
    epoch skips it as it skips a shard failing its checksum. With a query's ``selector``, every
    shard is decided first, and those its manifests rule out are counted from them (their offset
    indexes are not loaded)."""
    counts = []
    for i in range(len(shards)):
        try:
            if selector is not None:
                selector.shard_mask(i)
                counts.append(shards.count(i))
                continue
            counts.append(len(shards.offsets(i)))
        except ShardError as exc:
            if on_error == "raise":
                raise
            if on_error == "warn":
                warnings.warn(f"{exc}; skipping the shard", AtdataWarning, stacklevel=4)
            counts.append(0)
    return counts


def located(exc: SchemaError, url: str, offset: int, key: str) -> SchemaError:
    """``exc`` with the sample key, shard and member offset added to its message."""
    return SchemaError(
        redact(f"{exc} [sample {key!r}, shard {url}, member at byte {offset}]"), path=exc.path
    )


def decode_bodies(bodies: list[Any]) -> list[Any]:
    """Bodies as decoded values (a SchemaError instance in place of one that failed)."""
    try:
        if max(map(len, bodies), default=0) < _ZERO_COPY_MIN:
            return list(map(msgpack.unpackb, bodies))
        return [unpack_map(b) for b in bodies]
    except Exception:  # a bad body somewhere: decode one by one to find it
        decoded: list[Any] = []
        for body in bodies:
            try:
                decoded.append(unpack_map(body))
            except SchemaError as exc:
                decoded.append(exc)
        return decoded


class PlanReader:
    """Reads a dataset's samples at plan positions, applying its stages and error policy."""

    def __init__(self, dataset: Readable) -> None:
        if dataset._source_type is DictSample:
            raise SchemaError(
                "this reading mode needs a sample type (the dataset yields DictSample): "
                "give one with Dataset[T](...) or ds.as_type(T)"
            )
        self.dataset = dataset
        self.codec = codec_for(dataset._source_type)
        self.collator = Collator(self.codec)
        self.empty: Allocator | None = None  # where batch arrays go (None: plain numpy)
        members = member_layout(dataset._source_type)
        # a leading query stage (Dataset.where) tells which members can match before reading
        first = dataset._stages[0].fn if dataset._stages else None
        pick = getattr(first, "selector", None)
        self.selector: Any = pick(dataset.shards) if callable(pick) else None
        self.slots: SlotReader | GroupSlotReader
        if members is None:  # a query verifies the headers of the members it reads, not all
            self.slots = SlotReader(dataset.shards, whole=self.selector is None)
            self._decode: Any = self.codec.decode
        else:  # key groups decoded member by member: no msgpack fast path
            self.slots = GroupSlotReader(dataset.shards)
            self._decode = partial(members.decode, cap=max_stream_member())
        self.staged = bool(dataset._stages) or members is not None
        # raw bodies are msgpack maps only in the one-member layout
        self.prefilter: Any = getattr(first, "prefilter", None) if members is None else None
        self._kept: Any = None  # the positions the last _read kept
        self._unsure: Any = None  # of those, the ones no manifest selected (test before decoding)
        try:
            self.output_names: tuple[str, ...] = codec_for(dataset.sample_type).names
        except (SchemaError, TypeError):
            self.output_names = ()

    def use_allocator(self, empty: Allocator) -> None:
        """Allocate every batch array with ``empty(shape, dtype)`` from now on (a fresh array
        each call: the reader never writes into an array it has handed out)."""
        self.empty = empty
        self.collator.empty = empty

    def _handle(self, exc: Exception) -> None:
        skip_or_raise(self.dataset.on_error, exc, stacklevel=4)

    def _read(self, order: EpochOrder, positions: "np.ndarray[Any, Any]") -> Any:
        shards, members = order.locate(positions)
        if self.selector is not None:
            keep = self.selector.keep(shards, members)
            self._unsure = self.selector.unsure(shards[keep])
            if not keep.all():
                shards, members = shards[keep], members[keep]
                self._kept = np.asarray(positions)[keep]
                got = self.slots.read(shards, members)
                for err in got.errors:
                    self._handle(err)
                return got
        self._kept = positions
        got = self.slots.read(shards, members)
        for err in got.errors:
            self._handle(err)
        return got

    def batch(self, order: EpochOrder, positions: "np.ndarray[Any, Any]") -> Any:
        """A :class:`SampleBatch` of the samples at ``positions`` (None if none survive)."""
        if self.staged:
            samples, keys = self.samples(order, positions)
            if not samples:
                return None
            try:
                codec = codec_for(self.dataset.sample_type)
            except (SchemaError, TypeError):
                return samples
            return collate_samples_checked(codec, samples, keys, self._handle, self.empty)
        got = self._read(order, positions)
        if not got.bodies:
            return None
        maps = decode_bodies(got.bodies)
        batch = self.collator.collate(maps, got.keys)
        if batch is not None:
            return batch
        good_maps: list[dict[str, Any]] = []
        good_keys: list[str] = []
        for data, key, (url, offset) in zip(maps, got.keys, got.origins, strict=True):
            try:
                if isinstance(data, SchemaError):
                    raise data
                good_maps.append(self.codec.check_map(data))
            except SchemaError as exc:
                self._handle(located(exc, url, offset, key))
                continue
            good_keys.append(key)
        return collate_maps(self.codec, good_maps, good_keys) if good_maps else None

    def samples(
        self, order: EpochOrder, positions: "np.ndarray[Any, Any]", slots: list[int] | None = None
    ) -> tuple[list[Any], list[str]]:
        """Decoded samples at ``positions`` after the stages, and their keys (and, into
        ``slots``, the position each one came from)."""
        got = self._read(order, positions)
        decode = self._decode
        prefilter = self.prefilter
        unsure = self._unsure.tolist() if prefilter is not None else None
        out: list[Any] = []
        keys: list[str] = []
        where = np.asarray(self._kept).tolist()
        for k, key, body, (url, offset) in zip(
            got.index, got.keys, got.bodies, got.origins, strict=True
        ):
            try:
                if unsure is not None and unsure[k] and not prefilter(body):
                    continue
                sample = decode(body)
            except SchemaError as exc:
                self._handle(located(exc, url, offset, key))
                continue
            except ShardError as exc:
                self._handle(exc)
                continue
            sample = run_stages(self.dataset._stages, sample)
            if sample is not DROPPED:
                out.append(sample)
                keys.append(key)
                if slots is not None:
                    slots.append(where[k])
        return out, keys


class Progress:
    """How far an iteration got: samples delivered, and the position after the last of them
    (or the origin ``(shard url, header offset)`` of the last one, resolved when asked)."""

    __slots__ = ("delivered", "exact", "slot")

    def __init__(self, slot: int, delivered: int) -> None:
        self.slot: int | tuple[str, int] = slot
        self.delivered = delivered
        self.exact = True  # False while a rank is part way through a run of samples


def iter_sequential(
    reader: PlanReader,
    order: EpochOrder,
    progress: Progress,
    *,
    batch_size: int | None,
    drop_last: bool,
    skip: int = 0,
) -> Iterator[Any]:
    """One consumer's samples or batches from ``progress.slot`` on, in the order's order.

    The first ``skip`` delivered samples are read and dropped (``start=`` after a filter, where
    the position of the n-th delivered sample is only known by reading up to it).
    """
    total = order.total
    pos = progress.slot if isinstance(progress.slot, int) else 0  # always an int here
    if batch_size is not None and not reader.staged and not skip:
        while pos < total:
            stop = min(pos + batch_size, total)
            if drop_last and stop - pos < batch_size:
                return
            batch = reader.batch(order, np.arange(pos, stop, dtype=np.int64))
            pos = stop
            if batch is None:
                continue
            progress.slot = stop
            progress.delivered += len(batch)
            yield batch
        return
    codec = codec_for(reader.dataset.sample_type) if batch_size is not None else None
    pending: list[Any] = []
    pending_keys: list[str] = []
    # a query's selector drops most positions before reading: take them in larger steps
    chunk = max(batch_size or 0, 256 if reader.selector is None else 8192)
    while pos < total:
        stop = min(pos + chunk, total)
        slots: list[int] = []
        samples, keys = reader.samples(order, np.arange(pos, stop, dtype=np.int64), slots)
        pos = stop
        for sample, key, slot in zip(samples, keys, slots, strict=True):
            if skip:
                skip -= 1
                progress.delivered += 1
                progress.slot = slot + 1
                continue
            if batch_size is None:
                progress.slot = slot + 1
                progress.delivered += 1
                yield sample
                continue
            pending.append(sample)
            pending_keys.append(key)
            if len(pending) == batch_size:
                progress.slot = slot + 1
                batch = _collated(reader, codec, pending, pending_keys)
                progress.delivered += 0 if batch is None else len(batch)
                if batch is not None:
                    yield batch
                pending, pending_keys = [], []
    if pending and not drop_last:
        progress.slot = total
        batch = _collated(reader, codec, pending, pending_keys)
        progress.delivered += 0 if batch is None else len(batch)
        if batch is not None:
            yield batch


def _collated(reader: PlanReader, codec: Any, samples: list[Any], keys: list[str]) -> Any:
    if codec is None:
        return samples
    return collate_samples_checked(codec, samples, keys, reader._handle, reader.empty)


def iter_layout(
    reader: PlanReader,
    order: EpochOrder,
    layout: Layout,
    *,
    rank: int,
    worker: int,
    workers: int,
    batched: bool,
    progress: Progress | None = None,
) -> Iterator[Any]:
    """The batches (or their samples) of rank ``rank`` that worker ``worker`` reads; with
    ``progress`` (one worker), the epoch position once every rank got as far."""
    for j in range(worker, layout.rank_batches, workers):
        positions = layout.positions(rank, j)
        if batched:
            batch = reader.batch(order, positions)
            if progress is not None:
                progress.slot = layout.position_after(j + 1)
            if batch is not None:
                if progress is not None:
                    progress.delivered += len(batch)
                yield batch
            continue
        samples = reader.samples(order, positions)[0]
        for k, sample in enumerate(samples):
            if progress is not None:
                last = k == len(samples) - 1
                progress.exact = last
                progress.slot = layout.position_after(j + 1 if last else j)
                progress.delivered += 1
            yield sample
