"""``atdata.torch.loader`` hands out the same batches as a plain ``DataLoader(batch_size=None)``
(its own collate function skips walking string lists but converts everything else alike)."""

from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import atdata
from atdata.torch import loader
from atdata.torch.loader import convert_batch
from torch_helpers import Item, write_shards

SIZES = [37, 5, 60, 21]
pytestmark = pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> atdata.Dataset[Item]:
    return write_shards(tmp_path_factory.mktemp("torch-conv"), SIZES)


def _same(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for name in a:
            _same(a[name], b[name])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    else:
        assert a == b


def _as_dict(item: Item) -> dict[str, Any]:
    return {"idx": np.int64(item.idx), "vec": item.vec, "name": item.name}


@pytest.mark.parametrize("shuffle", [False, True])
def test_loader_batches_equal_the_dataloader_defaults(
    ds: atdata.Dataset[Item], shuffle: bool
) -> None:
    tds = ds.to_torch(batch_size=16, shuffle=shuffle, seed=3, drop_last=False)
    mine = list(loader(tds))
    plain = list(DataLoader(tds, batch_size=None))
    assert len(mine) == len(plain) == 8
    _same(mine, plain)
    assert mine[0]["name"][:2] == plain[0]["name"][:2]
    assert isinstance(mine[0]["__key__"], list) and isinstance(mine[0]["name"], list)


def test_numpy_values_a_map_stage_returns_become_tensors_as_by_default(
    ds: atdata.Dataset[Item],
) -> None:
    tds = ds.map(_as_dict, sample_type=dict).to_torch(batch_size=8)
    mine = list(loader(tds))
    plain = list(DataLoader(tds, batch_size=None))
    _same(mine, plain)
    first = mine[0]["samples"][0]
    assert isinstance(first["vec"], torch.Tensor) and isinstance(first["idx"], torch.Tensor)


def test_convert_batch_keeps_plain_lists_and_converts_the_rest() -> None:
    batch = {
        "a": torch.arange(3),
        "names": ["x", "y", None],
        "arrays": [np.zeros(2), np.ones(2)],
        "mixed": [1, np.float32(2.0)],
    }
    out = convert_batch(batch)
    assert out["a"] is batch["a"] and out["names"] is batch["names"]
    assert all(isinstance(t, torch.Tensor) for t in out["arrays"])
    assert isinstance(out["mixed"][1], torch.Tensor)
    assert convert_batch([np.zeros(1)])[0].dtype == torch.float64
