"""``to_hf``: an atdata dataset as a ``datasets.Dataset`` or ``IterableDataset``.

Rows are made from samples one at a time by a generator: the ``IterableDataset`` reads the shards
again on each pass (nothing is held), the ``Dataset`` is written by ``datasets`` into its Arrow
cache on disk as the generator runs (memory stays bounded by one writer batch).
"""

import pickle
import uuid
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any, Protocol

import numpy as np

from ..dict_sample import DictSample
from ..errors import SchemaError
from ..media.image import Image
from ..schema import Schema
from .features import features_of_schema, hf

__all__ = ["to_hf"]


class _Samples(Protocol):
    """What is converted: an :class:`atdata.Dataset` (not imported here: it imports this)."""

    @property
    def sample_type(self) -> type[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


def to_hf(dataset: _Samples, *, streaming: bool = False, cache_dir: str | None = None) -> Any:
    """``dataset`` as a Hugging Face ``datasets.Dataset`` (``streaming=True``: ``IterableDataset``).

    See :meth:`atdata.Dataset.to_hf`.
    """
    datasets = hf()
    features, convert = _plan(dataset)
    rows = _Rows(dataset, convert)
    if streaming:
        return datasets.IterableDataset.from_generator(rows, features=features)
    # a fresh fingerprint: the generator reads shards that may change under the same URLs, so an
    # Arrow cache of an earlier call must never be taken for this one
    return datasets.Dataset.from_generator(
        rows, features=features, cache_dir=cache_dir, fingerprint=uuid.uuid4().hex
    )


class _Rows:
    """The generator ``datasets`` calls for rows: one row per sample, read on each call.

    ``datasets`` hashes (dill-pickles) it to name its builder; it pickles as the dataset's plain
    pickle (sample types by reference), which is also how it travels to DataLoader workers.
    """

    def __init__(self, dataset: _Samples, convert: Callable[[Any], dict[str, Any]]) -> None:
        self._dataset = dataset
        self._convert = convert

    def __call__(self) -> Iterator[dict[str, Any]]:
        for sample in self._dataset:
            yield self._convert(sample)

    def __reduce__(self) -> tuple[Callable[..., "_Rows"], tuple[Any, ...]]:
        try:
            return _rows_from_pickle, (pickle.dumps(self._dataset),)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            # a local class or a lambda stage: fine in this process, which is all that hashing
            # needs; only unpickling elsewhere (DataLoader workers) fails, and says why
            return _unpicklable, (uuid.uuid4().hex, str(exc))


def _rows_from_pickle(data: bytes) -> _Rows:
    dataset = pickle.loads(data)  # our own pickle of a Dataset, made in __reduce__ above
    return _Rows(dataset, _plan(dataset)[1])


def _unpicklable(_token: str, reason: str) -> _Rows:
    raise SchemaError(
        f"this to_hf() dataset cannot be sent to another process ({reason}); define its sample "
        "type and map functions at module level"
    )


def _plan(dataset: _Samples) -> tuple[Any, Callable[[Any], dict[str, Any]]]:
    """The features of the dataset's rows (None for DictSample: ``datasets`` infers them) and the
    function that turns one sample into one row."""
    sample_type = dataset.sample_type
    if sample_type is DictSample:
        return None, _dict_row
    try:
        schema = Schema.from_type(sample_type)
    except SchemaError as exc:
        raise SchemaError(
            f"to_hf needs a packable sample type or DictSample, not {sample_type!r}: {exc}"
        ) from exc
    features = features_of_schema(schema, lambda: next(islice(iter(dataset), 1), None))
    names = [f.name for f in schema.fields]
    images = {f.name for f in schema.fields if f.type.kind == "image"}

    def row(sample: Any) -> dict[str, Any]:
        out = {}
        for name in names:
            value = getattr(sample, name)
            out[name] = _image_cell(value) if name in images else value
        return out

    return features, row


def _image_cell(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Image):
        return {"bytes": value.data, "path": None}
    return {"bytes": Image.encode(np.asarray(value), format="png").data, "path": None}


def _dict_row(sample: Any) -> dict[str, Any]:
    return {k: _image_cell(v) if isinstance(v, Image) else v for k, v in sample.items()}
