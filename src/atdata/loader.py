"""``Loader``: one iteration plan over a dataset, yielding samples or batches.

Typed datasets follow the epoch's global order (:class:`atdata.plan.EpochOrder`, a pure function
of the offset indexes, seed and epoch): one reader in storage order streams the shards chunk by
chunk (:func:`~atdata.shards.reader.iter_sample_chunks`); shuffled orders and several readers
(ranks, torch workers) read by position (:mod:`atdata.planreader`), several readers taking whole
batches in turn (:func:`atdata.plan.make_layout`). ``start`` and :meth:`Loader.state_dict`
positions count delivered samples. DictSample datasets keep the per-shard plans of
:func:`atdata.plan.make_plan` and a buffer shuffle. Batches
without map/filter stages take the fast path: bodies are msgpack-decoded chunk by chunk and a
:class:`~atdata.batch.Collator` validates and stacks whole columns at once; only when that finds
a problem are the batch's samples checked one by one, to name the bad one and apply ``on_error``.
"""

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import islice, repeat
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from .batch import Collator, SampleBatch, collate_maps, collate_samples_checked
from .codec import Codec, codec_for, unpack_map
from .errors import InvalidArgumentError, SchemaError, ShardError
from .members import decode_member, member_layout
from .plan import (
    Consumer,
    EpochOrder,
    Plan,
    PlanError,
    current_consumer,
    make_layout,
    make_plan,
)
from .planreader import (
    DROPPED,
    PlanReader,
    Progress,
    Readable,
    decode_bodies,
    epoch_order,
    iter_layout,
    iter_sequential,
    located,
    run_stages,
    skip_or_raise,
)
from .sample import DictSample
from .shards.reader import SampleChunk, iter_members, iter_sample_chunks, max_stream_member
from .shards.tar import split_name

__all__ = ["Loader", "Stage", "dict_decoder", "located"]


ST = TypeVar("ST")
_SAMPLE_SUFFIX = "msgpack"
_UNBATCHED_RUN = 64  # unbatched samples go to workers/ranks in runs of this many
Raw = tuple[str, Any, str, int]  # key, body, shard url, member offset


@dataclass(frozen=True)
class Stage:
    """One ``map`` or ``filter`` applied to decoded samples."""

    kind: Literal["map", "filter"]
    fn: Callable[[Any], Any]


class Loader(Generic[ST]):
    """A re-iterable plan over a dataset: samples or :class:`SampleBatch` es."""

    def __init__(
        self,
        dataset: Readable,
        *,
        batch_size: int | None = None,
        seed: int | None = None,
        buffer_size: int = 10_000,
        epoch: int = 0,
        start: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        buffer_bytes: int = 1 << 30,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise InvalidArgumentError("batch_size must be at least 1")
        if start < 0:
            raise InvalidArgumentError("start must be >= 0")
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.buffer_size = buffer_size
        self.epoch = epoch
        self.start = start
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.buffer_bytes = buffer_bytes
        self._resume: tuple[int, int] | None = None  # (position, delivered) from a saved state
        self._progress = Progress(start, start)
        self._url_index: dict[str, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch (it changes the shuffled order; ordered plans ignore it)."""
        if epoch != self.epoch:
            self._resume = None
        self.epoch = epoch

    # -- position ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where the last iteration got: ``delivered`` samples (after filters) and ``position``,
        the place in the epoch's order just after the last of them. Load it into a loader made
        the same way (same seed, buffer and, with several ranks, world size) to go on from there.
        """
        if self.dataset._source_type is DictSample:
            raise PlanError("state_dict() needs a typed dataset (not DictSample)")
        consumer = current_consumer(self.rank, self.world_size)
        if consumer.num_workers > 1:
            raise PlanError("state_dict() of a loader read by several workers: use atdata.torch")
        p = self._progress
        if not p.exact:
            raise PlanError(
                "state_dict() part way through a rank's run of samples: take it between runs "
                "(or read batches)"
            )
        return {
            "version": 1,
            "epoch": self.epoch,
            "seed": self.seed,
            "buffer_size": self.buffer_size,
            "buffer_bytes": self.buffer_bytes,
            "position": self._position(p),
            "delivered": p.delivered,
            "samples": self.dataset.shards.total(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go on from a saved :meth:`state_dict` at the next iteration, without re-reading."""
        for name in ("seed", "buffer_size", "buffer_bytes"):
            mine = getattr(self, name)
            if self.seed is None and name != "seed":
                continue
            if state.get(name) != mine:
                raise PlanError(
                    f"cannot resume exactly: the state has {name}={state.get(name)!r}, this "
                    f"loader {name}={mine!r}"
                )
        if state.get("samples") != self.dataset.shards.total():
            raise PlanError(
                "cannot resume: the dataset's shards hold a different number of samples"
            )
        self.epoch = int(state["epoch"])
        self._resume = (int(state["position"]), int(state["delivered"]))
        self._progress = Progress(*self._resume)

    def _position(self, p: Progress) -> int:
        if isinstance(p.slot, int):
            return p.slot
        url, offset = p.slot  # the origin of the last delivered sample (fast ordered path)
        shards = self.dataset.shards
        if self._url_index is None:
            self._url_index = {u: i for i, u in enumerate(shards.urls)}
        i = self._url_index[url]
        member = int(np.searchsorted(shards.offsets(i).header_offsets, offset))
        return shards.cumulative()[i] + member + 1

    def plan(self, consumer: Consumer | None = None) -> Plan:
        consumer = consumer or current_consumer(self.rank, self.world_size)
        return make_plan(
            len(self.dataset.shards), seed=self.seed, epoch=self.epoch, consumer=consumer
        )

    def __iter__(self) -> Iterator[Any]:
        ds = self.dataset
        if ds._source_type is DictSample:
            return self._legacy(self.plan())
        consumer = current_consumer(self.rank, self.world_size)
        filtered = any(stage.kind == "filter" for stage in ds._stages)
        if self._resume is not None:  # a loaded state applies to the next iteration only
            slot, delivered = self._resume
            self._resume = None
            skip = 0
        elif filtered and self.start:
            slot, delivered, skip = 0, 0, self.start
        else:
            slot = delivered = self.start
            skip = 0
        self._progress = Progress(slot, delivered)
        if consumer.count > 1:
            if skip:
                raise PlanError(
                    "start= counts delivered samples, and after a filter that count is only "
                    "known to one reader: resume from a saved state_dict() instead"
                )
            return self._shared(consumer, slot)
        progress = self._progress
        if self.seed is None and not ds._stages and member_layout(ds._source_type) is None:
            return self._ordered_fast(progress, slot)
        reader = PlanReader(ds)
        return iter_sequential(
            reader,
            self._order(),
            progress,
            batch_size=self.batch_size,
            drop_last=self.drop_last,
            skip=skip,
        )

    def _order(self) -> EpochOrder:
        return epoch_order(
            self.dataset,
            seed=self.seed,
            epoch=self.epoch,
            window=self.buffer_size,
            window_bytes=self.buffer_bytes,
        )

    def _shared(self, consumer: Consumer, start: int) -> Iterator[Any]:
        """This consumer's share of the epoch: whole batches (unbatched: runs of up to 64)."""
        order = self._order()
        run = max(1, min(_UNBATCHED_RUN, order.total // (4 * consumer.count)))
        layout = make_layout(
            start,
            order.total,
            world_size=consumer.world_size,
            batch_size=self.batch_size or run,
            drop_last=self.drop_last and self.batch_size is not None,
            uneven="drop" if self.drop_last and self.batch_size is not None else "spread",
        )
        return iter_layout(
            PlanReader(self.dataset),
            order,
            layout,
            rank=consumer.rank,
            worker=consumer.worker,
            workers=consumer.num_workers,
            batched=self.batch_size is not None,
            progress=self._progress if consumer.num_workers == 1 else None,
        )

    def _ordered_fast(self, progress: Progress, start: int) -> Iterator[Any]:
        """Storage order, one consumer, no stages: shards streamed chunk by chunk."""
        ds = self.dataset
        if self.batch_size is not None:
            groups = _located_groups(self._chunks(self.plan(), start))
            for batch in self._fast_batches(groups, codec_for(ds._source_type), self.batch_size):
                progress.delivered += len(batch)
                progress.slot = self._last_origin
                yield batch
            return
        yield from self._samples(self._raw(self.plan(), start), progress=progress)

    def _legacy(self, plan: Plan) -> Iterator[Any]:
        """DictSample datasets (members grouped by key, no offset index needed)."""
        if (
            self.start
            and plan.shuffle_seed is not None
            and (plan.sample_stride != 1 or len(plan.shards) != len(self.dataset.shards))
        ):
            raise PlanError(
                "start= with several workers/ranks needs a typed dataset (Dataset[T]); "
                "DictSample datasets resume only with one reader"
            )
        raw = self._raw(plan, 0 if plan.shuffle_seed is not None else self.start)
        if plan.shuffle_seed is not None:
            raw = _shuffle(raw, plan.shuffle_seed, self.buffer_size)
            if self.start:
                raw = islice(raw, self.start, None)
        if self.batch_size is None:
            return self._samples(raw)
        return self._batches_from_samples(self._samples(raw, keyed=True), self.batch_size)

    # -- raw members ----------------------------------------------------------------------------
    def _shard_order(self, plan: Plan, start: int) -> tuple[Iterable[int], int] | None:
        """The shards to read and the header offset to start the first one at (for start=)."""
        shards = self.dataset.shards
        if not start or plan.shuffle_seed is not None:
            return plan.shards, 0
        if plan.sample_stride != 1 or len(plan.shards) != len(shards):
            raise PlanError(
                "start= with several workers/ranks needs a typed dataset (Dataset[T]); "
                "DictSample datasets resume only with one reader"
            )
        if start >= shards.total():
            return None  # resuming at (or past) the end of the epoch: nothing remains
        shard, member = shards.locate(start)
        first_offset = shards.offsets(shard).start_offset(member)
        return plan.shards[plan.shards.index(shard) :], first_offset

    def _chunks(self, plan: Plan, start: int = 0) -> Iterator[tuple[SampleChunk, str]]:
        """Sample-member chunks of the plan's shards, this consumer's share only."""
        order = self._shard_order(plan, start)
        if order is None:
            return
        shard_numbers, first_offset = order
        shards = self.dataset.shards
        count = 0
        stride, offset = plan.sample_stride, plan.sample_offset
        for n, i in enumerate(shard_numbers):
            src = shards.source(i)
            try:  # opening a local or cached shard verifies it: a failure is this shard's error
                index = shards.sidecar(i) if src.local_path() is not None else None
                for chunk in iter_sample_chunks(
                    src,
                    offsets=index,
                    start_offset=first_offset if n == 0 else 0,
                    max_size=shards.known_size(i),
                ):
                    if stride == 1:
                        yield chunk, src.url
                        continue
                    first = (offset - count) % stride
                    count += len(chunk.keys)
                    share = SampleChunk(
                        chunk.keys[first::stride],
                        chunk.bodies[first::stride],
                        chunk.offsets[first::stride],
                    )
                    yield share, src.url
            except ShardError as exc:
                self._handle(exc)

    def _raw(self, plan: Plan, start: int = 0) -> Iterator[Raw]:
        if self.dataset._source_type is not DictSample:
            for chunk, url in self._chunks(plan, start):
                yield from zip(chunk.keys, chunk.bodies, repeat(url), chunk.offsets, strict=False)
            return
        order = self._shard_order(plan, start)
        if order is None:
            return
        shard_numbers, first_offset = order
        count = 0
        stride, offset = plan.sample_stride, plan.sample_offset
        for n, i in enumerate(shard_numbers):
            src = self.dataset.shards.source(i)
            members = iter_members(
                src,
                start_offset=first_offset if n == 0 else 0,
                max_size=self.dataset.shards.known_size(i),
            )
            for item in self._grouped_items(members, src.url):
                if stride == 1 or count % stride == offset:
                    yield item
                count += 1

    def _grouped_items(self, members: Iterator[Any], url: str) -> Iterator[Raw]:
        """Members grouped by key for DictSample: the msgpack map plus other suffixes as bytes."""
        current: str | None = None
        parts: dict[str, Any] = {}
        offset = 0
        try:
            for m, body in members:
                key, suffix = split_name(m.name)
                if key != current:
                    if current is not None:
                        yield current, parts, url, offset
                    current, parts, offset = key, {}, m.header_offset
                parts[suffix] = body
            if current is not None:
                yield current, parts, url, offset
        except ShardError as exc:
            self._handle(exc)

    def _handle(self, exc: Exception) -> None:
        skip_or_raise(self.dataset.on_error, exc, stacklevel=3)

    # -- samples ---------------------------------------------------------------------------------
    def _samples(
        self, raw: Iterator[Raw], keyed: bool = False, progress: Progress | None = None
    ) -> Iterator[Any]:
        """Decoded samples after the stages; ``(key, sample)`` pairs when ``keyed``."""
        ds = self.dataset
        stype = ds._source_type
        cap = max_stream_member()
        if stype is DictSample:
            decode: Callable[[Any], Any] = partial(dict_decoder, cap=cap)
        elif (members := member_layout(stype)) is not None:
            decode = partial(members.decode, cap=cap)
        else:
            decode = codec_for(stype).decode
        stages = ds._stages
        for key, body, url, offset in raw:
            try:
                sample = decode(body)
            except SchemaError as exc:
                self._handle(located(exc, url, offset, key))
                continue
            if stages:
                sample = run_stages(stages, sample)
            if sample is not DROPPED:
                if progress is not None:
                    progress.delivered += 1
                    progress.slot = (url, offset)
                yield (key, sample) if keyed else sample

    def _batches_from_samples(self, keyed: Iterator[Any], size: int) -> Iterator[Any]:
        stype = self.dataset.sample_type
        if stype is DictSample:
            for group in _groups(keyed, size, self.drop_last):
                yield [sample for _key, sample in group]
            return
        codec = codec_for(stype)
        for group in _groups(keyed, size, self.drop_last):
            batch = collate_samples_checked(
                codec,
                [sample for _key, sample in group],
                [key for key, _sample in group],
                self._handle,
            )
            if batch is not None:
                yield batch

    # -- the fast batch path ------------------------------------------------------------------------
    def _fast_batches(
        self, groups: Iterator["Group"], codec: Codec[Any], size: int
    ) -> Iterator[SampleBatch[Any]]:
        collator = Collator(codec)
        maps: list[Any] = []
        keys: list[str] = []
        origins: list[tuple[str, int]] = []
        for group_keys, bodies, group_origins in groups:
            maps.extend(decode_bodies(bodies))
            keys.extend(group_keys)
            origins.extend(group_origins)
            while len(maps) >= size:
                self._last_origin = origins[size - 1]
                batch = self._collate(collator, codec, maps[:size], keys[:size], origins[:size])
                del maps[:size], keys[:size], origins[:size]
                if batch is not None:
                    yield batch
        while maps and not (self.drop_last and len(maps) < size):
            self._last_origin = origins[:size][-1]
            batch = self._collate(collator, codec, maps[:size], keys[:size], origins[:size])
            del maps[:size], keys[:size], origins[:size]
            if batch is not None:
                yield batch

    def _collate(
        self,
        collator: Collator[Any],
        codec: Codec[Any],
        maps: list[Any],
        keys: list[str],
        origins: list[tuple[str, int]],
    ) -> SampleBatch[Any] | None:
        batch = collator.collate(maps, keys)
        if batch is not None:
            return batch
        # something is wrong in this batch: check sample by sample to name it and apply the policy
        good_maps: list[dict[str, Any]] = []
        good_keys: list[str] = []
        for data, key, (url, offset) in zip(maps, keys, origins, strict=True):
            try:
                if isinstance(data, SchemaError):
                    raise data
                good_maps.append(codec.check_map(data))
            except SchemaError as exc:
                self._handle(located(exc, url, offset, key))
                continue
            good_keys.append(key)
        if not good_maps:
            return None
        return collate_maps(codec, good_maps, good_keys)

    def __repr__(self) -> str:
        mode = "ordered" if self.seed is None else f"shuffled(seed={self.seed}, epoch={self.epoch})"
        return f"Loader({self.dataset!r}, {mode}, batch_size={self.batch_size})"


def dict_decoder(parts: dict[str, Any], cap: int | None = None) -> DictSample:
    """A DictSample from a key group: the ``.msgpack`` map, other members decoded by their
    extension (:func:`atdata.members.decode_member`; bytes when unknown)."""
    data: dict[str, Any] = {}
    for suffix, body in parts.items():
        if suffix == _SAMPLE_SUFFIX:
            data.update(unpack_map(body, views=False))
        else:
            data[suffix] = decode_member(suffix, body, cap)
    return DictSample(data)


def _groups(items: Iterator[Any], size: int, drop_last: bool) -> Iterator[list[Any]]:
    while True:
        group = list(islice(items, size))
        if not group or (drop_last and len(group) < size):
            return
        yield group


Group = tuple[list[str], list[Any], list[tuple[str, int]]]  # keys, bodies, (url, offset)s


def _located_groups(chunks: Iterator[tuple[SampleChunk, str]]) -> Iterator[Group]:
    for chunk, url in chunks:
        yield chunk.keys, chunk.bodies, list(zip(repeat(url), chunk.offsets, strict=False))


def _raw_groups(raw: Iterator[Raw], size: int) -> Iterator[Group]:
    """Raw items (e.g. shuffled) in groups, for the fast batch path."""
    while True:
        items = list(islice(raw, size))
        if not items:
            return
        keys, bodies, urls, offsets = zip(*items, strict=True)
        yield list(keys), list(bodies), list(zip(urls, offsets, strict=True))


def _shuffle(raw: Iterator[Raw], seed: int, buffer_size: int) -> Iterator[Raw]:
    rng = random.Random(seed)
    buf: list[Raw] = []
    for raw_item in raw:
        body = raw_item[1]
        item = raw_item
        if isinstance(body, memoryview) and isinstance(body.obj, bytes):
            item = (raw_item[0], bytes(body), raw_item[2], raw_item[3])  # don't pin a stream chunk
        if len(buf) < buffer_size:
            buf.append(item)
            continue
        j = rng.randrange(buffer_size)
        out, buf[j] = buf[j], item
        yield out
    rng.shuffle(buf)
    yield from buf
