"""``Loader``: one iteration plan over a dataset, yielding samples or batches.

The plan (which shards, in which order, which samples) comes from :func:`atdata.plan.make_plan`.
Members are read a chunk at a time (:func:`~atdata.shards.reader.iter_sample_chunks`). Batches
without map/filter stages take the fast path: bodies are msgpack-decoded chunk by chunk and a
:class:`~atdata.batch.Collator` validates and stacks whole columns at once; only when that finds
a problem are the batch's samples checked one by one, to name the bad one and apply ``on_error``.
"""

import random
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice, repeat
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import msgpack

from .batch import Collator, SampleBatch, collate_maps, collate_samples
from .codec import Codec, codec_for, unpack_map
from .errors import AtdataWarning, SchemaError, ShardError
from .plan import Consumer, Plan, current_consumer, make_plan
from .sample import DictSample
from .shards.reader import SampleChunk, iter_members, iter_sample_chunks
from .shards.tar import split_name

if TYPE_CHECKING:
    from .dataset import Dataset

__all__ = ["Loader", "Stage", "located"]

ST = TypeVar("ST")
_SAMPLE_SUFFIX = "msgpack"
_ZERO_COPY_MIN = 1 << 16
Raw = tuple[str, Any, str, int]  # key, body, shard url, member offset


@dataclass(frozen=True)
class Stage:
    """One ``map`` or ``filter`` applied to decoded samples."""

    kind: Literal["map", "filter"]
    fn: Callable[[Any], Any]


def located(exc: SchemaError, url: str, offset: int, key: str) -> SchemaError:
    """``exc`` with the sample key, shard and member offset added to its message."""
    return SchemaError(
        f"{exc} [sample {key!r}, shard {url}, member at byte {offset}]", path=exc.path
    )


class Loader(Generic[ST]):
    """A re-iterable plan over a dataset: samples or :class:`SampleBatch` es."""

    def __init__(
        self,
        dataset: "Dataset[ST]",
        *,
        batch_size: int | None = None,
        seed: int | None = None,
        buffer_size: int = 10_000,
        epoch: int = 0,
        start: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if start < 0:
            raise ValueError("start must be >= 0")
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.buffer_size = buffer_size
        self.epoch = epoch
        self.start = start
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch (it changes the shuffled order; ordered plans ignore it)."""
        self.epoch = epoch

    def plan(self, consumer: Consumer | None = None) -> Plan:
        consumer = consumer or current_consumer(self.rank, self.world_size)
        return make_plan(
            len(self.dataset.shards), seed=self.seed, epoch=self.epoch, consumer=consumer
        )

    def __iter__(self) -> Iterator[Any]:
        plan = self.plan()
        ds = self.dataset
        typed = ds._source_type is not DictSample
        if self.batch_size is not None and typed and not ds._stages and plan.shuffle_seed is None:
            groups = _located_groups(self._chunks(plan))
            return self._fast_batches(groups, codec_for(ds._source_type), self.batch_size)
        raw = self._raw(plan)
        if plan.shuffle_seed is not None:
            raw = _shuffle(raw, plan.shuffle_seed, self.buffer_size)
            if self.start:
                raw = islice(raw, self.start, None)
        if self.batch_size is not None and typed and not ds._stages:
            groups = _raw_groups(raw, max(self.batch_size, 64))
            return self._fast_batches(groups, codec_for(ds._source_type), self.batch_size)
        if self.batch_size is None:
            return self._samples(raw)
        return self._batches_from_samples(self._samples(raw, keyed=True), self.batch_size)

    # -- raw members ----------------------------------------------------------------------------
    def _shard_order(self, plan: Plan) -> tuple[Iterable[int], int] | None:
        """The shards to read and the header offset to start the first one at (for start=)."""
        shards = self.dataset.shards
        if not self.start or plan.shuffle_seed is not None:
            return plan.shards, 0
        if plan.sample_stride != 1 or len(plan.shards) != len(shards):
            raise ValueError(
                "start= with several workers/ranks is given per consumer; not supported"
            )
        if self.start >= shards.total():
            return None  # resuming at (or past) the end of the epoch: nothing remains
        shard, member = shards.locate(self.start)
        first_offset = shards.offsets(shard).start_offset(member)
        return plan.shards[plan.shards.index(shard) :], first_offset

    def _chunks(self, plan: Plan) -> Iterator[tuple[SampleChunk, str]]:
        """Sample-member chunks of the plan's shards, this consumer's share only."""
        order = self._shard_order(plan)
        if order is None:
            return
        shard_numbers, first_offset = order
        shards = self.dataset.shards
        count = 0
        stride, offset = plan.sample_stride, plan.sample_offset
        for n, i in enumerate(shard_numbers):
            src = shards.source(i)
            index = shards.sidecar(i) if src.local_path() is not None else None
            try:
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

    def _raw(self, plan: Plan) -> Iterator[Raw]:
        if self.dataset._source_type is not DictSample:
            for chunk, url in self._chunks(plan):
                yield from zip(chunk.keys, chunk.bodies, repeat(url), chunk.offsets, strict=False)
            return
        order = self._shard_order(plan)
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
        policy = self.dataset.on_error
        if policy == "raise":
            raise exc
        if policy == "warn":
            warnings.warn(f"skipped: {exc}", AtdataWarning, stacklevel=3)

    # -- samples ---------------------------------------------------------------------------------
    def _samples(self, raw: Iterator[Raw], keyed: bool = False) -> Iterator[Any]:
        """Decoded samples after the stages; ``(key, sample)`` pairs when ``keyed``."""
        ds = self.dataset
        stype = ds._source_type
        decode = _dict_decoder if stype is DictSample else codec_for(stype).decode
        stages = ds._stages
        for key, body, url, offset in raw:
            try:
                sample = decode(body)
            except SchemaError as exc:
                self._handle(located(exc, url, offset, key))
                continue
            keep = True
            for stage in stages:
                if stage.kind == "map":
                    sample = stage.fn(sample)
                elif not stage.fn(sample):
                    keep = False
                    break
            if keep:
                yield (key, sample) if keyed else sample

    def _batches_from_samples(self, keyed: Iterator[Any], size: int) -> Iterator[Any]:
        stype = self.dataset.sample_type
        if stype is DictSample:
            for group in _groups(keyed, size, self.drop_last):
                yield [sample for _key, sample in group]
            return
        codec = codec_for(stype)
        for group in _groups(keyed, size, self.drop_last):
            yield collate_samples(
                codec, [sample for _key, sample in group], [key for key, _sample in group]
            )

    # -- the fast batch path ------------------------------------------------------------------------
    def _fast_batches(
        self, groups: Iterator["Group"], codec: Codec[Any], size: int
    ) -> Iterator[SampleBatch[Any]]:
        collator = Collator(codec)
        maps: list[Any] = []
        keys: list[str] = []
        origins: list[tuple[str, int]] = []
        for group_keys, bodies, group_origins in groups:
            maps.extend(_decode_bodies(bodies))
            keys.extend(group_keys)
            origins.extend(group_origins)
            while len(maps) >= size:
                batch = self._collate(collator, codec, maps[:size], keys[:size], origins[:size])
                del maps[:size], keys[:size], origins[:size]
                if batch is not None:
                    yield batch
        while maps and not (self.drop_last and len(maps) < size):
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


def _dict_decoder(parts: dict[str, Any]) -> DictSample:
    data: dict[str, Any] = {}
    for suffix, body in parts.items():
        if suffix == _SAMPLE_SUFFIX:
            data.update(unpack_map(body, views=False))
        else:
            data[suffix] = bytes(body)
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


def _decode_bodies(bodies: list[Any]) -> list[Any]:
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
