"""Turning positions of a plan into samples or batches (shared by ``Loader`` and ``atdata.torch``).

A batch is read by position: the plan maps positions to (shard, member), :class:`SlotReader`
slices the bodies out of the shards, and without map/filter stages the bodies go through the
fast batch path (one msgpack decode per body, whole columns validated and stacked). With stages,
samples are decoded one by one, transformed and filtered, so a batch may come out shorter than
its positions.
"""

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from .batch import Collator, SampleBatch, collate_maps, collate_samples
from .codec import codec_for
from .errors import AtdataWarning, SchemaError, ShardError
from .plan import EpochOrder
from .sample import DictSample
from .slots import SlotReader

if TYPE_CHECKING:
    from .dataset import Dataset

__all__ = ["PlanReader", "epoch_order"]


def epoch_order(
    dataset: "Dataset[Any]",
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
    cum = shards.cumulative()
    counts = [cum[i + 1] - cum[i] for i in range(len(shards))]
    return EpochOrder(
        counts,
        lambda i: shards.offsets(i).sizes,
        seed=seed,
        epoch=epoch,
        window=window,
        window_bytes=window_bytes,
        length=length,
        resample=resample,
    )


class PlanReader:
    """Reads a dataset's samples at plan positions, applying its stages and error policy."""

    def __init__(self, dataset: "Dataset[Any]") -> None:
        if dataset._source_type is DictSample:
            raise SchemaError(
                "this reading mode needs a sample type (the dataset yields DictSample): "
                "give one with Dataset[T](...) or ds.as_type(T)"
            )
        self.dataset = dataset
        self.slots = SlotReader(dataset.shards)
        self.codec = codec_for(dataset._source_type)
        self.collator = Collator(self.codec)
        self.staged = bool(dataset._stages)

    def _handle(self, exc: Exception) -> None:
        policy = self.dataset.on_error
        if policy == "raise":
            raise exc
        if policy == "warn":
            warnings.warn(f"skipped: {exc}", AtdataWarning, stacklevel=4)

    def _read(self, order: EpochOrder, positions: "np.ndarray[Any, Any]") -> Any:
        shards, members = order.locate(positions)
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
            return collate_samples(codec, samples, keys)
        from .loader import _decode_bodies, located

        got = self._read(order, positions)
        if not got.bodies:
            return None
        maps = _decode_bodies(got.bodies)
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
        self, order: EpochOrder, positions: "np.ndarray[Any, Any]"
    ) -> tuple[list[Any], list[str]]:
        """Decoded samples at ``positions`` after the stages, and their keys."""
        from .loader import located

        got = self._read(order, positions)
        decode = self.codec.decode
        out: list[Any] = []
        keys: list[str] = []
        for key, body, (url, offset) in zip(got.keys, got.bodies, got.origins, strict=True):
            try:
                sample = decode(body)
            except SchemaError as exc:
                self._handle(located(exc, url, offset, key))
                continue
            except ShardError as exc:
                self._handle(exc)
                continue
            ok = True
            for stage in self.dataset._stages:
                if stage.kind == "map":
                    sample = stage.fn(sample)
                elif not stage.fn(sample):
                    ok = False
                    break
            if ok:
                out.append(sample)
                keys.append(key)
        return out, keys
