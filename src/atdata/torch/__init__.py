"""PyTorch integration (``pip install 'atdata[torch]'``): ``ds.to_torch(...)`` and ``loader()``.

``import atdata`` never imports torch; importing ``atdata.torch`` does.
"""

from ..plan import PlanError
from .dataset import TorchDataset, resolve_world, to_tensors
from .loader import TorchLoader, loader

__all__ = ["PlanError", "TorchDataset", "TorchLoader", "loader", "resolve_world", "to_tensors"]
