"""``loader()``: a DataLoader over a :class:`TorchDataset` that knows how far the loop got."""

from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader

from .dataset import TorchDataset

__all__ = ["TorchLoader", "loader"]


class TorchLoader:
    """Iterates ``DataLoader(dataset, batch_size=None, ...)`` and counts the batches the training
    loop has taken, so that :meth:`state_dict` is exact even with workers prefetching ahead."""

    def __init__(self, dataset: TorchDataset, **kwargs: Any) -> None:
        if kwargs.pop("batch_size", None) is not None:
            raise TypeError("batching is the dataset's: give batch_size to ds.to_torch()")
        if kwargs.get("num_workers", 0) == 0:
            kwargs.pop("persistent_workers", None)
            kwargs.pop("prefetch_factor", None)
        self.dataset = dataset
        self.dataloader: DataLoader[Any] = DataLoader(dataset, batch_size=None, **kwargs)
        self._consumed = 0
        self._finished = False

    def __iter__(self) -> Iterator[Any]:
        if self._finished:  # the last pass read the epoch to its end: this one starts afresh
            self.dataset.restart_epoch()
        self._consumed = 0
        self._finished = False
        total = len(self.dataset)
        for batch in self.dataloader:
            self._consumed += 1
            yield batch
        self._finished = self._consumed >= total

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)
        self._consumed = 0
        self._finished = False

    def state_dict(self) -> dict[str, Any]:
        """The exact position: the batches this loop consumed (not those prefetched)."""
        return self.dataset.state_for(self._consumed)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dataset.load_state_dict(state)
        self._consumed = 0
        self._finished = False


def loader(dataset: TorchDataset, **kwargs: Any) -> TorchLoader:
    """``DataLoader(dataset, batch_size=None, **kwargs)`` with ``state_dict``/``set_epoch``."""
    return TorchLoader(dataset, **kwargs)
