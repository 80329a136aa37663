"""atdata.torch through torch.utils.data.DataLoader: workers, start methods, epochs, batches."""

import subprocess
import sys
import warnings
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

import atdata
from atdata.torch import TorchDataset, loader
from torch_helpers import Item, ids, write_shards

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")

SIZES = [37, 5, 60, 21]  # 123 samples in uneven shards
N = sum(SIZES)
B = 10


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> atdata.Dataset[Item]:
    return write_shards(tmp_path_factory.mktemp("torch"), SIZES)


def _flat(batches: list[list[int]]) -> list[int]:
    return [i for b in batches for i in b]


def test_importing_atdata_does_not_import_torch(ds: atdata.Dataset[Item]) -> None:
    code = (
        "import sys, atdata\n"
        f"ds = atdata.Dataset({ds.urls!r})\n"
        "len(ds); list(ds.ordered(batch_size=4))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_batches_are_dicts_of_tensors_and_lists(ds: atdata.Dataset[Item]) -> None:
    tds = ds.to_torch(batch_size=B)
    assert isinstance(tds, torch.utils.data.IterableDataset)
    batch = next(iter(tds))
    assert batch["idx"].dtype == torch.int64 and batch["idx"].tolist() == list(range(B))
    assert batch["vec"].dtype == torch.float32 and tuple(batch["vec"].shape) == (B, 4)
    assert batch["vec"][3].tolist() == [3.0] * 4
    assert batch["name"] == [f"item-{i}" for i in range(B)]
    assert len(batch["__key__"]) == B
    batch["vec"] += 1  # a writable tensor of its own


def test_len_is_batches_per_epoch(ds: atdata.Dataset[Item]) -> None:
    assert len(ds.to_torch(batch_size=B)) == N // B
    assert len(ds.to_torch(batch_size=B, drop_last=False)) == -(-N // B)
    assert len(list(ds.to_torch(batch_size=B))) == N // B


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize(
    ("workers", "context"), [(0, None), (2, "fork"), (3, "fork"), (2, "spawn")]
)
def test_dataloader_reads_every_sample_once_in_whole_batches(
    ds: atdata.Dataset[Item], shuffle: bool, workers: int, context: str | None
) -> None:
    tds = ds.to_torch(batch_size=B, shuffle=shuffle, seed=3, drop_last=False)
    in_process = ids(tds)
    kwargs: dict[str, Any] = {"num_workers": workers}
    if context:
        kwargs["multiprocessing_context"] = context
    got = ids(DataLoader(tds, batch_size=None, **kwargs))
    assert got == in_process  # the round robin over workers restores the global order
    assert sorted(_flat(got)) == list(range(N))
    assert [len(b) for b in got] == [B] * (N // B) + [N % B]  # only the last batch is short
    if not shuffle:
        assert _flat(got) == list(range(N))
    else:
        assert _flat(got) != list(range(N))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_each_epoch_has_its_own_order_and_persistent_workers_see_it(
    ds: atdata.Dataset[Item], context: str
) -> None:
    tds = ds.to_torch(batch_size=B, shuffle=True, seed=5, drop_last=False)
    dl = loader(tds, num_workers=2, persistent_workers=True, multiprocessing_context=context)
    epochs = []
    for epoch in range(3):
        dl.set_epoch(epoch)
        epochs.append(_flat(ids(dl)))
    for order in epochs:
        assert sorted(order) == list(range(N))
    assert len({tuple(e) for e in epochs}) == 3
    tds.set_epoch(1)
    assert _flat(ids(tds)) == epochs[1]  # the same epoch, the same order, in-process


def test_plain_dataloader_with_persistent_workers_follows_set_epoch(
    ds: atdata.Dataset[Item],
) -> None:
    tds = ds.to_torch(batch_size=B, shuffle=True, seed=5)
    dl = DataLoader(tds, batch_size=None, num_workers=2, persistent_workers=True)
    first = _flat(ids(dl))
    tds.set_epoch(1)
    second = _flat(ids(dl))
    assert first != second
    tds.set_epoch(0)
    assert _flat(ids(dl)) == first


def test_many_workers_do_not_cut_their_own_short_batches(ds: atdata.Dataset[Item]) -> None:
    tds = ds.to_torch(batch_size=16, shuffle=True, drop_last=False)
    got = ids(DataLoader(tds, batch_size=None, num_workers=4))
    assert [len(b) for b in got] == [16] * (N // 16) + [N % 16]
    assert sorted(_flat(got)) == list(range(N))


def test_pin_memory_keeps_batches_intact(ds: atdata.Dataset[Item]) -> None:
    tds = ds.to_torch(batch_size=B)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch may warn that there is no device to pin for
        got = list(loader(tds, num_workers=2, pin_memory=True))
    assert _flat(ids(got)) == list(range(N // B * B))
    assert all(isinstance(b["vec"], torch.Tensor) for b in got)


def test_a_typeless_dataset_is_refused_with_advice(ds: atdata.Dataset[Item]) -> None:
    with pytest.raises(atdata.SchemaError, match="sample type"):
        atdata.Dataset(ds.urls).to_torch(batch_size=4)


def test_the_dataset_pickles_for_spawned_workers_without_shared_state(
    ds: atdata.Dataset[Item],
) -> None:
    import pickle

    tds = ds.to_torch(batch_size=B, shuffle=True, epoch=2)
    clone = pickle.loads(pickle.dumps(tds))
    assert isinstance(clone, TorchDataset) and clone.epoch == 2
    assert ids(clone) == ids(tds)
