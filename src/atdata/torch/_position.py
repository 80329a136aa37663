"""How far a training loop got through a :class:`TorchDataset`: shared by the loader and the feed."""

from typing import Any

from .dataset import TorchDataset

__all__ = ["ConsumedPosition"]


class ConsumedPosition:
    """Counts the batches a loop has taken from ``self.dataset``, so ``state_dict()`` is exact
    however far readers have prefetched; a pass that read its epoch to the end restarts it."""

    dataset: TorchDataset
    _consumed: int = 0
    _finished: bool = False  # the last pass read the epoch to its end

    def _begin_pass(self) -> None:
        if self._finished:  # the last pass read the epoch to its end: this one starts afresh
            self.dataset.restart_epoch()
        self._consumed = 0
        self._finished = False

    def __len__(self) -> int:
        """Batches this rank gets in the current epoch (from a loaded position)."""
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)
        self._consumed = 0
        self._finished = False

    def state_dict(self) -> dict[str, Any]:
        """The exact position: the batches this loop has taken (not those read ahead)."""
        return self.dataset.state_for(self._consumed)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume where ``state`` was saved (by a feed or a torch dataset/loader; any world size)."""
        self.dataset.load_state_dict(state)
        self._consumed = 0
        self._finished = False
