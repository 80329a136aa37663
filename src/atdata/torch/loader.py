"""``loader()``: a DataLoader over a :class:`TorchDataset` that knows how far the loop got."""

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data import default_convert as _untyped_convert

from ._position import ConsumedPosition
from ._ring import RingBatch
from .dataset import TorchDataset

__all__ = ["TorchLoader", "convert_batch", "loader"]


default_convert: Callable[[Any], Any] = _untyped_convert
_PLAIN = frozenset({str, bytes, int, float, bool, type(None)})


def convert_batch(batch: Any) -> Any:
    """The DataLoader's ``collate_fn`` for batches made already (picklable): what its default
    (``default_convert``) gives, without walking lists of plain values (strings, keys) item by
    item, which costs milliseconds per batch of 1024."""
    if not isinstance(batch, dict):
        return default_convert(batch)
    out: dict[str, Any] = {}
    for name, value in batch.items():
        if isinstance(value, torch.Tensor) or (
            type(value) is list and set(map(type, value)) <= _PLAIN
        ):
            out[name] = value
        else:
            out[name] = default_convert(value)
    if isinstance(batch, RingBatch):  # keeps its slot marks on the way to the training process
        return RingBatch(out, token=batch.token, marks=batch.marks)
    return out


class TorchLoader(ConsumedPosition):
    """Iterates ``DataLoader(dataset, batch_size=None, ...)`` and counts the batches the training
    loop has taken, so that :meth:`state_dict` is exact even with workers prefetching ahead."""

    def __init__(self, dataset: TorchDataset, **kwargs: Any) -> None:
        if kwargs.pop("batch_size", None) is not None:
            raise TypeError("batching is the dataset's: give batch_size to ds.to_torch()")
        if kwargs.get("num_workers", 0) == 0:
            kwargs.pop("persistent_workers", None)
            kwargs.pop("prefetch_factor", None)
        # the batches are made already: the default per-item conversion would only walk their
        # string lists element by element (milliseconds per batch of 1024)
        kwargs.setdefault("collate_fn", convert_batch)
        self.dataset = dataset
        self.dataloader: DataLoader[Any] = DataLoader(dataset, batch_size=None, **kwargs)

    def __iter__(self) -> Iterator[Any]:
        self._begin_pass()
        total = len(self.dataset)
        for batch in self.dataloader:
            self._consumed += 1
            yield batch
        self._finished = self._consumed >= total


def loader(dataset: TorchDataset, **kwargs: Any) -> TorchLoader:
    """``DataLoader(dataset, batch_size=None, **kwargs)`` with ``state_dict``/``set_epoch``."""
    return TorchLoader(dataset, **kwargs)
