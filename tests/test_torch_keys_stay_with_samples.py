"""Every batch's ``__key__`` list lines up with its samples, also when a batch holds the same
member twice (resampling with replacement, padding) or members of several shards."""

from typing import Any

import pytest

import atdata
from torch_helpers import Item, write_shards

SIZES = [30, 7, 45]


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> atdata.Dataset[Item]:
    return write_shards(tmp_path_factory.mktemp("torch-keys"), SIZES)


def _key_of(ds: atdata.Dataset[Item]) -> dict[int, str]:
    out: dict[int, str] = {}
    for b in ds.to_torch(batch_size=7, drop_last=False):
        out.update(zip((int(i) for i in b["idx"]), b["__key__"], strict=True))
    assert len(out) == sum(SIZES)
    return out


@pytest.mark.parametrize(
    "settings",
    [
        {"resample": True, "seed": 5},
        {"resample": True, "seed": 11, "epoch_length": 6},
        {"shuffle": True, "seed": 2, "uneven": "pad", "world_size": 4, "rank": 3},
        {"shuffle": True, "seed": 9, "buffer_size": 3},
    ],
)
def test_keys_and_names_match_their_samples(
    ds: atdata.Dataset[Item], settings: dict[str, Any]
) -> None:
    key_of = _key_of(ds)
    seen_twice = False
    batches = list(ds.to_torch(batch_size=16, drop_last=False, **settings))
    assert batches
    for b in batches:
        idx = [int(i) for i in b["idx"]]
        seen_twice |= len(set(idx)) < len(idx)
        assert b["__key__"] == [key_of[i] for i in idx]
        assert b["name"] == [f"item-{i}" for i in idx]
    if settings.get("resample"):
        assert seen_twice  # the case this guards: a member twice in one batch


@pytest.mark.parametrize("members", [[3, 4, 4, 6], [6, 4, 3, 4], [0, 0], [5, 6, 7, 8]])
def test_slot_reads_keep_keys_with_repeated_members(
    ds: atdata.Dataset[Item], members: list[int]
) -> None:
    import numpy as np

    from atdata.slots import SlotReader

    index = ds.shards.offsets(0)
    got = SlotReader(ds.shards).read(np.zeros(len(members), dtype=np.int64), np.asarray(members))
    assert got.keys == [index.keys[m] for m in members]
    assert [offset for _, offset in got.origins] == [int(index.header_offsets[m]) for m in members]
    assert got.index == list(range(len(members)))
    decoded = [Item.from_bytes(bytes(b)).idx for b in got.bodies]  # type: ignore[attr-defined]
    assert decoded == members  # shard 0 holds samples 0..29 in order
