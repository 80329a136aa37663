"""Ranks and workers: equal batch counts per rank whatever the shard sizes, drop/pad policies,
rank discovery, epoch-length control and resampling."""

from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

import atdata
from atdata.plan import PlanError
from atdata.torch import resolve_world
from torch_helpers import Item, ids, write_shards

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")

SIZES = [7000, 3, 6000, 4000, 3000]  # 20,003 samples in uneven shards
N = sum(SIZES)
B = 64
WORLD = 2


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> atdata.Dataset[Item]:
    return write_shards(tmp_path_factory.mktemp("ranks"), SIZES)


def _rank_batches(ds: atdata.Dataset[Item], workers: int, **kw: object) -> list[list[list[int]]]:
    out = []
    for rank in range(WORLD):
        tds = ds.to_torch(batch_size=B, rank=rank, world_size=WORLD, **kw)  # type: ignore[arg-type]
        got = ids(DataLoader(tds, batch_size=None, num_workers=workers))
        assert len(got) == len(tds)
        out.append(got)
    return out


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize(
    ("uneven", "drop_last", "batches", "last", "repeats", "missing"),
    [
        # 20,003 = 156 steps of 2 x 64, then 35 left over
        ("drop", True, 156, B, 0, 35),
        ("drop", False, 157, 17, 0, 1),
        ("pad", True, 157, B, 2 * 157 * B - N, 0),
        ("pad", False, 157, 18, 1, 0),
    ],
)
def test_two_ranks_by_two_workers_get_equal_batches_and_each_sample_once(
    big: atdata.Dataset[Item],
    shuffle: bool,
    uneven: str,
    drop_last: bool,
    batches: int,
    last: int,
    repeats: int,
    missing: int,
) -> None:
    ranks = _rank_batches(big, 2, shuffle=shuffle, seed=11, uneven=uneven, drop_last=drop_last)
    for got in ranks:
        assert len(got) == batches
        assert [len(b) for b in got[:-1]] == [B] * (batches - 1)
        assert len(got[-1]) == last
    seen = [i for got in ranks for b in got for i in b]
    assert len(seen) - len(set(seen)) == repeats
    assert N - len(set(seen)) == missing
    assert set(seen) <= set(range(N))


def test_rank_and_world_size_come_from_the_environment(
    big: atdata.Dataset[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    tds = big.to_torch(batch_size=B)
    assert (tds.rank, tds.world_size) == (1, 3)
    assert len(tds) == N // (3 * B)
    assert resolve_world(0, 2) == (0, 2)  # explicit arguments win
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(PlanError, match="rank 5"):
        big.to_torch(batch_size=B)


def test_an_initialised_process_group_gives_the_rank(
    big: atdata.Dataset[Item], tmp_path: Path
) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        assert resolve_world(None, None) == (0, 1)
    finally:
        dist.destroy_process_group()


def test_epoch_length_fixes_batches_per_epoch_and_runs_through_passes(
    big: atdata.Dataset[Item],
) -> None:
    small = atdata.Dataset[Item](big.urls[1:2] + big.urls[3:4])  # 4,003 samples
    n = len(small)
    length = 7  # batches per rank per epoch
    seen: list[int] = []
    for epoch in range(5):
        per_rank = []
        for rank in range(WORLD):
            tds = small.to_torch(
                batch_size=B, shuffle=True, epoch_length=length, rank=rank, world_size=WORLD
            )
            tds.set_epoch(epoch)
            per_rank.append(ids(tds))
            assert len(per_rank[-1]) == length == len(tds)
        for step in range(length):
            for rank in range(WORLD):
                seen.extend(per_rank[rank][step])
    # 5 epochs x 7 steps x 2 x 64 = 4,480 samples: the first pass exactly, then the second
    stored = sorted(i for b in small.ordered(batch_size=1000) for i in b.idx)
    assert sorted(seen[:n]) == stored
    assert len(set(seen[n:])) == len(seen) - n


def test_resampling_draws_with_replacement_deterministically(big: atdata.Dataset[Item]) -> None:
    tds = big.to_torch(batch_size=B, resample=True, seed=4, epoch_length=20)
    first = [i for b in ids(tds) for i in b]
    assert len(first) == 20 * B and len(set(first)) < len(first) + 1
    assert [i for b in ids(tds) for i in b] == first
    tds.set_epoch(1)
    second = [i for b in ids(tds) for i in b]
    assert second != first
    draws = np.asarray(first + second)
    assert draws.min() >= 0 and draws.max() < N
    # with replacement: over many draws from a small dataset some sample repeats
    few = atdata.Dataset[Item](big.urls[1:2])  # 3 samples
    got = [i for b in ids(few.to_torch(batch_size=2, resample=True, epoch_length=5)) for i in b]
    assert len(got) == 10 and len(set(got)) <= 3
