"""Ray Data out: ``Dataset.to_ray()`` (needs ``atdata[ray]``; the way in is
:mod:`atdata.ray_ingest`).

``to_ray`` is a Ray Data *datasource* (``ray.data.Datasource`` read through
``ray.data.read_datasource``) with one ``ReadTask`` per shard: the task reads its shard with the
atdata reader it was given (the dataset's integrity checks, maps and filters) and builds one
block from the samples' fields. Rows are dicts of the fields; arrays are numpy arrays (Ray keeps
them as tensor columns), images their encoded bytes, bytes stay bytes.

Ray is imported only when it runs.
"""

import dataclasses
import pickle
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from ._optional import require
from .errors import SchemaError
from .media.image import Image
from .sample import DictSample
from .schema import Schema


class _Samples(Protocol):
    """What to_ray reads: an atdata Dataset (its URLs; iterating gives samples)."""

    @property
    def urls(self) -> list[str]: ...

    def __iter__(self) -> Iterator[Any]: ...


__all__ = ["to_ray"]


def to_ray(dataset: _Samples, parts: Sequence[_Samples]) -> Any:
    """A ``ray.data.Dataset`` over ``parts`` (one dataset per shard of ``dataset``): one read
    task per part. Use :meth:`atdata.Dataset.to_ray`."""
    ray = require("ray", "ray")
    source = _datasource_class(ray)(dataset.urls, list(parts))
    return ray.data.read_datasource(source, override_num_blocks=max(1, len(parts)))


def _datasource_class(ray: Any) -> type:
    """The Datasource subclass (made once Ray is imported: it subclasses Ray's class)."""
    made = _MADE.get("AtdataShards")
    if made is None:
        made = _MADE["AtdataShards"] = type(
            "AtdataShards",
            (ray.data.Datasource,),
            {
                "__init__": _ds_init,
                "estimate_inmemory_data_size": lambda self: None,
                "get_read_tasks": _get_read_tasks,
                "get_name": lambda self: "AtdataShards",
                "__module__": __name__,
                "__qualname__": "AtdataShards",
            },
        )
    return made


_MADE: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    """``AtdataShards``, the datasource class, made on first use (Ray is imported then): Ray
    pickles it by reference, so a worker unpickling it gets it here too."""
    if name == "AtdataShards":
        return _datasource_class(require("ray", "ray"))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _ds_init(self: Any, urls: list[str], parts: list[_Samples]) -> None:
    self._urls = urls
    self._parts = parts


def _get_read_tasks(
    self: Any, parallelism: int, per_task_row_limit: int | None = None, **_: Any
) -> list[Any]:
    """One ReadTask per shard, whatever ``parallelism`` asks (a shard is the unit of reading)."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import ReadTask

    known = {f.name for f in dataclasses.fields(BlockMetadata)}
    tasks = []
    for url, part in zip(self._urls, self._parts, strict=True):
        values: dict[str, Any] = {"num_rows": None, "size_bytes": None, "exec_stats": None}
        values.update(schema=None, input_files=[url])
        meta = BlockMetadata(**{k: v for k, v in values.items() if k in known})
        tasks.append(ReadTask(_ShardRead(part, per_task_row_limit), meta))
    return tasks


class _ShardRead:
    """A read task's body: the blocks of one shard. The part dataset travels pickled with
    :mod:`pickle` (its own reducers: URLs and opener, no open files or caches), as derive tasks
    do, not through Ray's serializer."""

    def __init__(self, part: _Samples, limit: int | None) -> None:
        self.part = pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)
        self.limit = limit

    def __call__(self) -> Iterator[Any]:
        from ray.data.block import BlockAccessor

        rows = []
        for n, sample in enumerate(pickle.loads(self.part)):
            if self.limit is not None and n >= self.limit:
                break
            rows.append(_row(sample))
        if rows:
            yield BlockAccessor.batch_to_block(_columns(rows))


def _row(sample: Any) -> dict[str, Any]:
    if isinstance(sample, DictSample):
        items = list(sample.items())
    else:
        items = [(name, getattr(sample, name)) for name in _field_names(type(sample))]
    return {k: v.data if isinstance(v, Image) else v for k, v in items}


_FIELD_NAMES: dict[type, list[str]] = {}


def _field_names(sample_type: type) -> list[str]:
    names = _FIELD_NAMES.get(sample_type)
    if names is None:
        try:
            names = [f.name for f in Schema.from_type(sample_type).fields]
        except SchemaError as exc:
            raise SchemaError(
                f"to_ray needs packable samples or DictSample, not {sample_type!r}: {exc}"
            ) from exc
        _FIELD_NAMES[sample_type] = names
    return names


def _columns(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Rows as numpy columns: arrays of one shape stacked (a tensor column), anything else an
    object column (bytes are kept whole: a fixed-width bytes dtype would drop trailing NULs)."""
    out: dict[str, np.ndarray] = {}
    for name in rows[0]:
        values = [r.get(name) for r in rows]
        first = values[0]
        arrays = [v for v in values if isinstance(v, np.ndarray)]
        if (
            isinstance(first, np.ndarray)
            and len(arrays) == len(values)
            and all(v.shape == first.shape and v.dtype == first.dtype for v in arrays)
        ):
            out[name] = np.stack(arrays)
        elif all(
            isinstance(v, bool | int | float) and not isinstance(v, np.generic) for v in values
        ):
            out[name] = np.asarray(values)
        else:
            column = np.empty(len(values), dtype=object)
            column[:] = values
            out[name] = column
    return out
