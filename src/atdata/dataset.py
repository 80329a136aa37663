"""``Dataset[T]``: typed samples and batches streamed from shards, ordered or shuffled.

A dataset is an immutable description (shards, sample type, map/filter stages, error policy);
``ordered()`` and ``shuffled()`` return re-iterable :class:`Loader` objects whose iteration is a
pure function of the plan (see :mod:`atdata.plan`). The per-sample hot path is: a slice of the
shard buffer, one msgpack decode, converters chosen once per type, and (for batches) one copy of
each array's bytes into a preallocated batch array.
"""

import os
import random
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Generic, Literal, TypeVar, cast

from .batch import SampleBatch, collate_maps, collate_samples
from .codec import Codec, codec_for, unpack_map
from .errors import AtdataWarning, LensError, SchemaError, ShardError
from .plan import Consumer, Plan, current_consumer, make_plan
from .sample import DictSample
from .shards.reader import iter_members, read_body
from .shards.shardset import ShardSet, SourceFactory
from .shards.tar import split_name
from .shards.urls import expand_urls
from .sources import ShardCache, ShardSource, open_source, wrap_source

__all__ = ["Dataset", "Loader"]

ST = TypeVar("ST")
VT = TypeVar("VT")
OnError = Literal["raise", "skip", "warn"]
Source = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
_SAMPLE_SUFFIX = "msgpack"


@dataclass(frozen=True)
class _Stage:
    kind: Literal["map", "filter"]
    fn: Callable[[Any], Any]


class Dataset(Generic[ST]):
    """Typed samples stored in WebDataset shards.

    ``Dataset[T](source)`` or ``Dataset(source, T)``; ``source`` is a path, URL, brace pattern
    (``name-{000000..000099}.tar``), glob, directory, or a list of those. Without a type the
    samples are :class:`~atdata.DictSample`.

    ``cache=True`` (or a directory, or ``$ATDATA_CACHE_DIR``) keeps remote shards in a local,
    verified LRU cache; ``checksums`` maps shard URLs to their sha256 so that downloads are
    checked (``IntegrityError`` on mismatch). ``on_error`` chooses what a bad sample or shard
    does: ``"raise"`` (default), ``"skip"`` or ``"warn"``.
    """

    def __init__(
        self,
        source: Source | ShardSet,
        sample_type: type[ST] | None = None,
        *,
        on_error: OnError = "raise",
        cache: "bool | str | os.PathLike[str] | ShardCache | None" = None,
        checksums: Mapping[str, str] | None = None,
        source_factory: SourceFactory | None = None,
    ) -> None:
        if on_error not in ("raise", "skip", "warn"):
            raise ValueError(f"on_error must be 'raise', 'skip' or 'warn', not {on_error!r}")
        if isinstance(source, ShardSet):
            self._shards = source
        else:
            factory = source_factory or _source_factory(cache, checksums)
            self._shards = ShardSet(expand_urls(source), factory)
        self._explicit_type = sample_type
        self._stages: tuple[_Stage, ...] = ()
        self._decode_type: type[Any] | None = None  # the type decoded from shards, before stages
        self.on_error: OnError = on_error

    # -- types ----------------------------------------------------------------------------------
    @property
    def sample_type(self) -> type[ST]:
        """The type of the samples this dataset yields."""
        if self._explicit_type is not None:
            return self._explicit_type
        alias = self.__dict__.get("__orig_class__")
        if alias is not None:
            (arg,) = alias.__args__
            if isinstance(arg, type):
                return cast(type[ST], arg)
        return cast(type[ST], DictSample)

    @property
    def _source_type(self) -> type[Any]:
        return self._decode_type if self._decode_type is not None else self.sample_type

    @property
    def urls(self) -> list[str]:
        """The shard URLs, in order."""
        return list(self._shards.urls)

    @property
    def shards(self) -> ShardSet:
        return self._shards

    def _derive(self, sample_type: type[Any], stage: _Stage | None) -> "Dataset[Any]":
        out: Dataset[Any] = Dataset(self._shards, sample_type, on_error=self.on_error)
        out._stages = self._stages + ((stage,) if stage else ())
        out._decode_type = self._source_type
        return out

    # -- transforms -----------------------------------------------------------------------------
    def map(self, fn: Callable[[ST], VT], sample_type: type[VT] | None = None) -> "Dataset[VT]":
        """Apply ``fn`` to every sample (in every mode); pass ``sample_type`` if it changes type."""
        return self._derive(sample_type or self.sample_type, _Stage("map", fn))

    def filter(self, predicate: Callable[[ST], bool]) -> "Dataset[ST]":
        """Keep samples for which ``predicate`` is true (in every mode)."""
        return self._derive(self.sample_type, _Stage("filter", predicate))

    def as_type(self, view: type[VT], *, registry: Any = None) -> "Dataset[VT]":
        """View every sample as ``view`` through the lens registry (composing lenses if needed)."""
        from .lens import current_registry

        source = self.sample_type
        if view is source:
            return cast("Dataset[VT]", self)
        if source is DictSample and not self._stages:
            out: Dataset[VT] = Dataset(self._shards, view, on_error=self.on_error)
            return out  # decode straight into the view: the stored map is the same
        reg = registry if registry is not None else current_registry()
        try:
            lens = reg.find(source, view)
        except LensError:
            raise
        return self._derive(view, _Stage("map", lens.get))

    def with_on_error(self, on_error: OnError) -> "Dataset[ST]":
        out = self._derive(self.sample_type, None)
        out._decode_type = self._decode_type
        out.on_error = on_error
        return out

    # -- plans ----------------------------------------------------------------------------------
    def ordered(
        self,
        batch_size: int | None = None,
        *,
        start: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> "Loader[ST]":
        """Samples (or batches of ``batch_size``) in storage order, from sample ``start``."""
        return Loader(
            self,
            batch_size=batch_size,
            start=start,
            drop_last=drop_last,
            rank=rank,
            world_size=world_size,
        )

    def shuffled(
        self,
        seed: int = 0,
        batch_size: int | None = None,
        *,
        buffer_size: int = 10_000,
        epoch: int = 0,
        start: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> "Loader[ST]":
        """Two-level shuffle: shard order by (seed, epoch), then a bounded sample buffer."""
        if buffer_size < 1:
            raise ValueError("buffer_size must be at least 1")
        return Loader(
            self,
            batch_size=batch_size,
            seed=seed,
            buffer_size=buffer_size,
            epoch=epoch,
            start=start,
            drop_last=drop_last,
            rank=rank,
            world_size=world_size,
        )

    def __iter__(self) -> Iterator[ST]:
        return iter(self.ordered())

    def head(self, n: int = 5) -> list[ST]:
        """The first ``n`` samples, in order."""
        return list(islice(self.ordered(), n))

    # -- random access --------------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of samples (from the offset indexes); unknown after a filter."""
        if any(s.kind == "filter" for s in self._stages):
            raise TypeError("the length of a filtered dataset is not known without reading it")
        return self._shards.total()

    def __getitem__(self, index: int) -> ST:
        shard, member = self._shards.locate(index)
        return self._read_one(shard, member)

    def get(self, key: str) -> ST:
        """The sample stored under ``key`` (O(1) through the offset indexes)."""
        found = self._shards.find_key(key)
        if found is None:
            raise KeyError(f"no sample with key {key!r} in {len(self._shards)} shard(s)")
        return self._read_one(*found)

    def _read_one(self, shard: int, member: int) -> ST:
        if any(s.kind == "filter" for s in self._stages):
            raise TypeError("random access is not defined on a filtered dataset")
        src = self._shards.source(shard)
        idx = self._shards.offsets(shard)
        body = read_body(src, idx, member)
        key = idx.keys[member]
        try:
            sample = self._decoder()(body, key)
        except SchemaError as exc:
            raise _located(exc, src.url, int(idx.header_offsets[member]), key) from None
        for stage in self._stages:
            sample = stage.fn(sample)
        return cast(ST, sample)

    def _decoder(self) -> Callable[[Any, str], Any]:
        stype = self._source_type
        if stype is DictSample:
            return lambda body, key: DictSample(unpack_map(body, views=False))
        codec = codec_for(stype)
        return lambda body, key: codec.decode(body)

    def __repr__(self) -> str:
        return f"Dataset[{self.sample_type.__name__}]({len(self._shards)} shard(s))"


def _source_factory(
    cache: "bool | str | os.PathLike[str] | ShardCache | None", checksums: Mapping[str, str] | None
) -> SourceFactory | None:
    """Open shards through the local cache and/or verify them against recorded sha256 digests."""
    shard_cache = ShardCache.from_setting(cache)
    if shard_cache is None and not checksums:
        return None
    digests = dict(checksums or {})

    def open_shard(url: str) -> ShardSource:
        return wrap_source(open_source(url), cache=shard_cache, expected_sha256=digests.get(url))

    return open_shard


def _located(exc: SchemaError, url: str, offset: int, key: str) -> SchemaError:
    out = SchemaError(
        f"{exc} [sample {key!r}, shard {url}, member at byte {offset}]", path=exc.path
    )
    return out


Raw = tuple[str, Any, str, int]  # key, body, shard url, member offset


class Loader(Generic[ST]):
    """A re-iterable plan over a dataset: samples or :class:`SampleBatch` es."""

    def __init__(
        self,
        dataset: Dataset[ST],
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
        raw = self._raw(plan)
        if plan.shuffle_seed is not None:
            raw = _shuffle(raw, plan.shuffle_seed, self.buffer_size)
            if self.start:
                raw = islice(raw, self.start, None)
        ds = self.dataset
        fast_batches = (
            self.batch_size is not None and not ds._stages and ds._source_type is not DictSample
        )
        if fast_batches:
            assert self.batch_size is not None
            return self._batches_from_maps(raw, codec_for(ds._source_type), self.batch_size)
        if self.batch_size is None:
            return self._samples(raw)
        return self._batches_from_samples(self._samples(raw, keyed=True), self.batch_size)

    # -- raw members ----------------------------------------------------------------------------
    def _raw(self, plan: Plan) -> Iterator[Raw]:
        shards = self.dataset.shards
        typed = self.dataset._source_type is not DictSample
        order: Iterable[int] = plan.shards
        first_offset = 0
        if self.start and plan.shuffle_seed is None:
            if plan.sample_stride != 1 or len(plan.shards) != len(shards):
                raise ValueError(
                    "start= with several workers/ranks is given per consumer; not supported"
                )
            if self.start >= shards.total():
                return  # resuming at (or past) the end of the epoch: nothing remains
            shard, member = shards.locate(self.start)
            order = plan.shards[plan.shards.index(shard) :]
            first_offset = int(shards.offsets(shard).header_offsets[member])
        count = 0
        stride, offset = plan.sample_stride, plan.sample_offset
        for n, i in enumerate(order):
            src = shards.source(i)
            members = iter_members(src, start_offset=first_offset if n == 0 else 0)
            items = (
                self._typed_items(members, src.url)
                if typed
                else self._grouped_items(members, src.url)
            )
            for item in items:
                if stride == 1 or count % stride == offset:
                    yield item
                count += 1

    def _typed_items(self, members: Iterator[Any], url: str) -> Iterator[Raw]:
        try:
            for m, body in members:
                name = m.name
                if name.endswith(".msgpack") and "." not in (key := name[:-8]):
                    yield key, body, url, m.header_offset
                elif split_name(name)[1] == _SAMPLE_SUFFIX:
                    yield split_name(name)[0], body, url, m.header_offset
        except ShardError as exc:
            self._handle(exc)

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
                self._handle(_located(exc, url, offset, key))
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
            for chunk in _chunks(keyed, size, self.drop_last):
                yield [sample for _key, sample in chunk]
            return
        codec = codec_for(stype)
        for chunk in _chunks(keyed, size, self.drop_last):
            yield collate_samples(
                codec, [sample for _key, sample in chunk], [key for key, _sample in chunk]
            )

    def _batches_from_maps(
        self, raw: Iterator[Raw], codec: Codec[Any], size: int
    ) -> Iterator[SampleBatch[Any]]:
        maps: list[dict[str, Any]] = []
        keys: list[str] = []
        check = codec.check_map
        for key, body, url, offset in raw:
            try:
                maps.append(check(unpack_map(body)))
            except SchemaError as exc:
                self._handle(_located(exc, url, offset, key))
                continue
            keys.append(key)
            if len(maps) == size:
                yield collate_maps(codec, maps, keys)
                maps, keys = [], []
        if maps and not self.drop_last:
            yield collate_maps(codec, maps, keys)

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


def _chunks(items: Iterator[Any], size: int, drop_last: bool) -> Iterator[list[Any]]:
    while True:
        chunk = list(islice(items, size))
        if not chunk or (drop_last and len(chunk) < size):
            return
        yield chunk


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
