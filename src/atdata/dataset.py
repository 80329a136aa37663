"""``Dataset[T]``: typed samples and batches streamed from shards, ordered or shuffled.

A dataset is an immutable description (shards, sample type, map/filter stages, error policy);
``ordered()`` and ``shuffled()`` return re-iterable :class:`Loader` objects whose iteration is a
pure function of the plan (see :mod:`atdata.plan`); ``to_torch()`` the same plans as a torch
``IterableDataset`` (:mod:`atdata.torch`). The per-sample hot path is: a slice of the
shard buffer, one msgpack decode, converters chosen once per type, and (for batches) one copy of
each array's bytes into a preallocated batch array.
"""

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast

from .codec import codec_for, unpack_map
from .errors import InvalidArgumentError, LensError, SchemaError
from .loader import Loader, Stage, dict_decoder, located
from .members import member_layout
from .sample import DictSample
from .shards.access import read_body, read_group
from .shards.offsets import SidecarMismatch
from .shards.reader import max_stream_member
from .shards.shardset import CheckedOpener, ShardSet, SourceFactory
from .shards.urls import expand_urls
from .sources import ShardCache

if TYPE_CHECKING:
    from .query import Expr, Fields
    from .torch import TorchDataset

__all__ = ["Dataset", "Loader"]

ST = TypeVar("ST")
VT = TypeVar("VT")
OnError = Literal["raise", "skip", "warn"]
Source = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


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
            raise InvalidArgumentError(
                f"on_error must be 'raise', 'skip' or 'warn', not {on_error!r}"
            )
        if isinstance(source, ShardSet):
            self._shards = source
        else:
            factory = source_factory or _source_factory(cache, checksums)
            self._shards = ShardSet(expand_urls(source), factory)
        self._explicit_type = sample_type
        self._stages: tuple[Stage, ...] = ()
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

    def _derive(self, sample_type: type[Any], stage: Stage | None) -> "Dataset[Any]":
        out: Dataset[Any] = Dataset(self._shards, sample_type, on_error=self.on_error)
        out._stages = self._stages + ((stage,) if stage else ())
        out._decode_type = self._source_type
        return out

    # -- transforms -----------------------------------------------------------------------------
    def map(self, fn: Callable[[ST], VT], sample_type: type[VT] | None = None) -> "Dataset[VT]":
        """Apply ``fn`` to every sample (in every mode); pass ``sample_type`` if it changes type."""
        return self._derive(sample_type or self.sample_type, Stage("map", fn))

    def filter(self, predicate: Callable[[ST], bool]) -> "Dataset[ST]":
        """Keep samples for which ``predicate`` is true (in every mode)."""
        return self._derive(self.sample_type, Stage("filter", predicate))

    # -- queries (atdata.queryplan) ------------------------------------------------------------
    @property
    def fields(self) -> "Fields":
        """The samples' fields, for query expressions: ``ds.where(ds.fields.label == 3)``."""
        from .query import Fields

        names: tuple[str, ...] | None = None
        if self.sample_type is not DictSample:  # schema-free samples: any name may exist
            try:
                names = codec_for(self.sample_type).names
            except (SchemaError, TypeError):
                names = None
        return Fields(names)

    def where(self, query: "Expr | str") -> "Dataset[ST]":
        """The samples matching ``query`` (an expression from :attr:`fields`, or a string such
        as ``"label == 3 and score > 0.9"``): exactly what :meth:`filter` with the same test
        yields, in every mode and order, but shards whose manifests rule the query out are not
        opened and inside the others only the matching members are read."""
        from .query import as_expr
        from .queryplan import QueryFilter, query_of

        expr = as_expr(query, self.fields._names)
        own, _plain = query_of(self)
        if own is not None:  # where().where(): one query, both conditions
            out = self._derive(self.sample_type, None)
            out._decode_type = self._decode_type
            out._stages = (Stage("filter", QueryFilter(own & expr)),)
            return out
        if self._stages:
            return self.filter(QueryFilter(expr).__call__)
        return self._derive(self.sample_type, Stage("filter", QueryFilter(expr)))

    def count(self, query: "Expr | str | None" = None) -> int:
        """How many samples match ``query`` (all: None), from the manifests where they answer."""
        from .query import as_expr
        from .queryplan import count_matching

        return count_matching(self, None if query is None else as_expr(query, self.fields._names))

    def select(self, fields: Sequence[str]) -> dict[str, list[Any]]:
        """Columns of the samples' ``fields`` (``"__key__"``: keys), in storage order; from the
        manifests when every shard has one holding those fields, else by reading."""
        from .queryplan import select_columns

        return select_columns(self, fields)

    def to_arrow(self, fields: Sequence[str]) -> Any:
        """:meth:`select` as a ``pyarrow.Table`` (needs ``pip install 'atdata[arrow]'``)."""
        from .queryplan import to_arrow

        return to_arrow(self, fields)

    def _subset(self, shard_numbers: Sequence[int]) -> "Dataset[ST]":
        urls = [self._shards.urls[i] for i in shard_numbers]
        out: Dataset[ST] = Dataset(ShardSet(urls, self._shards.factory), self._source_type)
        out.on_error = self.on_error
        return out

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
        return self._derive(view, Stage("map", lens.get))

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
        """Samples (or batches of ``batch_size``) in storage order, from sample ``start``.

        ``start`` counts delivered samples (after filters) over all ranks and workers together;
        with several, each takes whole batches of the order in turn (rank ``r`` the ``r``-th
        batch of every step, worker ``j % num_workers`` the rank's ``j``-th batch).
        """
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
        buffer_bytes: int = 1 << 30,
    ) -> "Loader[ST]":
        """Two-level shuffle: shard order by (seed, epoch), then samples permuted within windows
        of at most ``buffer_size`` samples and ``buffer_bytes`` bytes of the shuffled shards.

        The order is a pure function of the offset indexes, seed and epoch, so ``start`` (samples
        delivered, after filters) and :meth:`Loader.load_state_dict` resume without re-reading
        (except ``start`` after a filter, which reads up to the n-th delivered sample).
        """
        if buffer_size < 1 or buffer_bytes < 1:
            raise InvalidArgumentError("buffer_size and buffer_bytes must be at least 1")
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
            buffer_bytes=buffer_bytes,
        )

    def to_torch(
        self,
        batch_size: int = 64,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = True,
        uneven: Literal["drop", "pad"] = "drop",
        epoch_length: int | None = None,
        resample: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        buffer_size: int = 10_000,
        buffer_bytes: int = 1 << 30,
        epoch: int = 0,
    ) -> "TorchDataset":
        """Batches as a ``torch.utils.data.IterableDataset`` (needs ``atdata[torch]``).

        Use it with ``DataLoader(tds, batch_size=None, num_workers=k)`` or, for an exact
        ``state_dict()`` (and no per-item walk of string columns by the DataLoader's default
        ``collate_fn``), with ``atdata.torch.loader(tds, num_workers=k, ...)``. Batches are dicts:
        array fields as tensors ``(B, ...)``, numeric scalar fields as 1-d tensors, other fields as
        lists, keys under ``"__key__"``.

        Every rank gets the same number of batches per epoch: the epoch's order (storage order, or
        shards permuted by ``(seed, epoch)`` and samples permuted within windows of at most
        ``buffer_size`` samples and ``buffer_bytes`` bytes) is cut into steps of
        ``world_size * batch_size``, rank ``r`` taking the ``r``-th batch of each. The remainder
        is dropped (``uneven="drop"``; with ``drop_last=False`` every rank gets an equal short
        last batch) or padded by repeating samples from the start of the epoch
        (``uneven="pad"``). ``rank``/``world_size`` default to ``torch.distributed`` when it is
        initialised, else ``RANK``/``WORLD_SIZE``. ``epoch_length`` fixes the batches per rank
        per epoch over an endless run of passes; ``resample=True`` draws with replacement.
        """
        from .torch import TorchDataset

        return TorchDataset(
            self,
            batch_size,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            uneven=uneven,
            epoch_length=epoch_length,
            resample=resample,
            rank=rank,
            world_size=world_size,
            buffer_size=buffer_size,
            buffer_bytes=buffer_bytes,
            epoch=epoch,
        )

    def to_hf(self, *, streaming: bool = False, cache_dir: str | None = None) -> Any:
        """This dataset as a Hugging Face ``datasets.Dataset`` (needs ``atdata[hf-datasets]``).

        ``streaming=True`` gives an ``IterableDataset`` that reads the shards on each pass;
        otherwise ``datasets`` writes the rows into its Arrow cache (``cache_dir``) as they are
        read. Either way samples are converted one at a time. The features follow the schema:
        arrays as ``Array2D``..``Array5D`` (or nested ``List``) of the declared dtype and shape,
        ``atdata.Image`` as ``datasets.Image``, ``bytes`` as binary, scalars as ``Value``.
        """
        from .hf_datasets.export import to_hf

        return to_hf(self, streaming=streaming, cache_dir=cache_dir)

    def to_ray(self) -> Any:
        """This dataset as a ``ray.data.Dataset`` (needs ``atdata[ray]``): one read task per
        shard, each reading its shard with this dataset's reader (its integrity checks, maps
        and filters) in storage order. Rows are dicts of the sample fields; arrays stay numpy
        arrays, images are their encoded bytes. See :func:`atdata.from_ray` for the way back.
        """
        from .ray_data import to_ray

        return to_ray(self, [self._one_shard(i) for i in range(len(self._shards))])

    def _one_shard(self, i: int) -> "Dataset[ST]":
        """This dataset (same reader, stages and types) over its shard ``i`` alone."""
        out: Dataset[ST] = Dataset(
            ShardSet([self._shards.urls[i]], self._shards.factory),
            self._explicit_type,
            on_error=self.on_error,
        )
        out._stages = self._stages
        out._decode_type = self._decode_type
        return out

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
        return self._read_at(lambda: self._shards.locate(index))

    def get(self, key: str) -> ST:
        """The sample stored under ``key`` (O(1) through the offset indexes)."""

        def where() -> tuple[int, int]:
            found = self._shards.find_key(key)
            if found is None:
                raise KeyError(f"no sample with key {key!r} in {len(self._shards)} shard(s)")
            return found

        return self._read_at(where)

    def _read_at(self, where: Callable[[], tuple[int, int]]) -> ST:
        """Read the sample ``where()`` finds; if the offset index proves wrong on the way, it
        is dropped for a scan (with a warning) and the sample is looked up again, once."""
        if any(s.kind == "filter" for s in self._stages):
            raise TypeError("random access is not defined on a filtered dataset")
        shard, member = where()
        try:
            return self._read_one(shard, member)
        except SidecarMismatch as exc:
            self._shards.rescan(shard, str(exc))
        return self._read_one(*where())

    def _read_one(self, shard: int, member: int) -> ST:
        src = self._shards.source(shard)
        idx = self._shards.offsets(shard)
        limit = self._shards.known_size(shard)
        key = idx.keys[member]
        try:
            members = member_layout(self._source_type)
            if self._source_type is DictSample:
                parts = read_group(src, idx, member, limit=limit)
                sample: Any = dict_decoder(parts, max_stream_member())
            elif members is not None:
                parts = read_group(src, idx, member, limit=limit)
                sample = members.decode(parts, max_stream_member())
            else:
                body = read_body(src, idx, member, limit=limit)
                sample = self._decoder()(body, key)
        except SchemaError as exc:
            raise located(exc, src.url, int(idx.header_offsets[member]), key) from None
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
    return CheckedOpener(shard_cache, checksums or {})
