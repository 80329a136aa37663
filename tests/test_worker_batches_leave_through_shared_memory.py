"""DataLoader workers build image (and array) batches in torch shared memory, so the batch leaves
the worker by handle; every batch is its own memory: batches the training loop keeps never change
when later batches arrive, and they hold the same pixels as an in-process read."""

from pathlib import Path
from typing import Annotated

import numpy as np
import pytest

import atdata
from atdata import Image, ImageSpec
from atdata.torch.dataset import _writable, shared_empty

torch = pytest.importorskip("torch")
pytest.importorskip("PIL.Image")
from torch.utils.data import DataLoader  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")

SPEC = ImageSpec(shape=(32, 40, 3), mode="RGB")


@atdata.packable
class Photo:
    image: Annotated[Image, SPEC] = atdata.member("png")
    label: int = atdata.member("cls")
    vec: np.ndarray = atdata.member("npy")


@atdata.packable
class Packed:
    image: Annotated[Image, SPEC]
    label: int
    vec: np.ndarray


def picture(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)


def vector(i: int) -> np.ndarray:
    return np.arange(20_000, dtype=np.float32) + i  # 80 KB: the pooled (large-row) array path


def write(tmp_path: Path, sample_type: type, layout: str, n: int = 24) -> atdata.Dataset:
    samples = [
        sample_type(image=Image.encode(picture(i), format="png"), label=i, vec=vector(i))
        for i in range(n)
    ]
    kwargs = {"layout": layout} if layout == "members" else {}
    return atdata.write_samples(samples, str(tmp_path / "s-%06d.tar"), maxcount=10, **kwargs)


def built_in_shared_memory(batch: dict) -> dict:
    return {**batch, "built_shared": (batch["image"].is_shared(), batch["vec"].is_shared())}


@pytest.mark.parametrize(("sample_type", "layout"), [(Photo, "members"), (Packed, "msgpack")])
@pytest.mark.parametrize("workers", [1, 2])
def test_kept_batches_stay_unchanged_and_match_the_in_process_read(
    tmp_path: Path, sample_type: type, layout: str, workers: int
) -> None:
    ds = atdata.Dataset(write(tmp_path, sample_type, layout).shards, sample_type)
    tds = ds.to_torch(4, drop_last=False)
    kept = list(  # all held at once
        DataLoader(tds, batch_size=None, num_workers=workers, collate_fn=built_in_shared_memory)
    )
    # in the worker, before torch pickles it: already shared, so it is sent by handle, not copied
    assert [b["built_shared"] for b in kept] == [(True, True)] * len(kept)
    ptrs = {b["image"].untyped_storage().data_ptr() for b in kept}
    assert len(ptrs) == len(kept)  # no two batches share memory
    labels = torch.cat([b["label"] for b in kept]).tolist()
    assert labels == list(range(24))
    for b in kept:
        for row, label in enumerate(b["label"].tolist()):
            assert np.array_equal(b["image"][row].numpy(), picture(label))
            assert np.array_equal(b["vec"][row].numpy(), vector(label))
    in_process = list(tds)
    assert [b["__key__"] for b in in_process] == [b["__key__"] for b in kept]
    for a, b in zip(in_process, kept, strict=True):
        assert torch.equal(a["image"], b["image"])
        assert torch.equal(a["vec"], b["vec"])


def test_only_a_whole_shared_array_is_sent_as_its_tensor() -> None:
    arr = shared_empty((3, 4, 5), np.dtype(np.uint8))
    arr[...] = 7
    tensor = _writable(arr)
    assert tensor.is_shared() and tensor.shape == (3, 4, 5)
    assert tensor.data_ptr() == arr.ctypes.data
    part = _writable(arr[1:])  # a view of part of it: an ordinary tensor of its own shape
    assert part.shape == (2, 4, 5) and not part.is_shared()
    assert isinstance(shared_empty((2,), np.dtype("U3")), np.ndarray)  # a dtype torch lacks
