"""Mid-epoch resume: the samples after a saved state are exactly those not yet consumed, with
workers, several ranks, another world size, shuffled or not, filters; nothing re-read to get there."""

import json
import types
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

import atdata
from atdata.plan import PlanError
from atdata.torch import loader
from torch_helpers import Item, ids, keep_even, write_shards

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")

SIZES = [137, 5, 260, 98, 200]  # 700 samples
N = sum(SIZES)
B = 8


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> atdata.Dataset[Item]:
    return write_shards(tmp_path_factory.mktemp("resume"), SIZES)


def _flat(batches: list[list[int]]) -> list[int]:
    return [i for b in batches for i in b]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize(("before", "after"), [(0, 0), (2, 2), (2, 4), (3, 1)])
def test_torch_resume_in_another_process_layout_continues_exactly(
    ds: atdata.Dataset[Item], shuffle: bool, before: int, after: int
) -> None:
    """Save after k batches with ``before`` workers; resume with ``after`` workers."""
    kw: dict[str, Any] = {"batch_size": B, "shuffle": shuffle, "seed": 7, "drop_last": False}
    full = _flat(ids(ds.to_torch(**kw)))
    dl = loader(ds.to_torch(**kw), num_workers=before)
    consumed = _flat(ids(islice(dl, 23)))
    state = json.loads(json.dumps(dl.state_dict()))  # plain data: saves anywhere
    assert state["position"] == 23 * B
    resumed = loader(ds.to_torch(**kw), num_workers=after)
    resumed.load_state_dict(state)
    assert len(resumed) == -(-(N - 23 * B) // B)
    rest = _flat(ids(resumed))
    assert consumed + rest == full
    assert resumed.state_dict()["position"] == N


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("new_world", [1, 2, 3, 5])
def test_torch_resume_with_another_world_size_splits_the_rest_once(
    ds: atdata.Dataset[Item], shuffle: bool, new_world: int
) -> None:
    kw: dict[str, Any] = {"batch_size": B, "shuffle": shuffle, "seed": 2}
    old = [ds.to_torch(rank=r, world_size=2, **kw) for r in range(2)]
    consumed: list[int] = []
    for tds in old:  # each rank takes 10 steps, in-process (its own state counts them)
        consumed += _flat(ids(islice(tds, 10)))
    states = [tds.state_dict() for tds in old]
    assert states[0] == states[1] and states[0]["position"] == 10 * 2 * B
    rest: list[list[int]] = []
    lengths = set()
    for r in range(new_world):
        tds = ds.to_torch(rank=r, world_size=new_world, **kw)
        tds.load_state_dict(states[0])
        got = ids(tds)
        lengths.add(len(got))
        rest.append(_flat(got))
    assert len(lengths) == 1  # every new rank: the same number of batches
    seen = consumed + [i for r in rest for i in r]
    assert len(seen) == len(set(seen))  # nothing twice
    left_out = N - len(seen)
    assert left_out < new_world * B  # only the documented remainder is dropped
    if not shuffle:  # the rest is the order's tail, cut into steps over the new ranks
        assert sorted(seen) == list(range(len(seen)))


def test_torch_resume_at_the_end_yields_nothing_and_the_next_epoch_starts_afresh(
    ds: atdata.Dataset[Item],
) -> None:
    tds = ds.to_torch(batch_size=B, shuffle=True, drop_last=False)
    dl = loader(tds)
    everything = _flat(ids(dl))
    state = dl.state_dict()
    again = loader(ds.to_torch(batch_size=B, shuffle=True, drop_last=False))
    again.load_state_dict(state)
    assert list(again) == []
    again.set_epoch(1)
    assert sorted(_flat(ids(again))) == sorted(everything)


def test_torch_state_from_another_order_is_refused(ds: atdata.Dataset[Item]) -> None:
    dl = loader(ds.to_torch(batch_size=B, shuffle=True, seed=1))
    next(iter(dl))
    other = ds.to_torch(batch_size=B, shuffle=True, seed=2)
    with pytest.raises(PlanError, match="seed"):
        other.load_state_dict(dl.state_dict())


def test_torch_filtered_batches_resume_by_stored_position(ds: atdata.Dataset[Item]) -> None:
    even = ds.filter(keep_even)
    full = _flat(ids(even.to_torch(batch_size=B, shuffle=True, drop_last=False)))
    assert sorted(full) == list(range(0, N, 2))
    dl = loader(even.to_torch(batch_size=B, shuffle=True, drop_last=False), num_workers=2)
    consumed = _flat(ids(islice(dl, 11)))
    resumed = loader(even.to_torch(batch_size=B, shuffle=True, drop_last=False))
    resumed.load_state_dict(dl.state_dict())
    assert consumed + _flat(ids(resumed)) == full


# -- the non-torch Loader ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["ordered", "shuffled"])
@pytest.mark.parametrize("batch", [None, 8])
@pytest.mark.parametrize("filtered", [False, True])
def test_loader_state_dict_resumes_exactly(
    ds: atdata.Dataset[Item], mode: str, batch: int | None, filtered: bool
) -> None:
    source = ds.filter(keep_even) if filtered else ds

    def make() -> atdata.Loader[Item]:
        if mode == "ordered":
            return source.ordered(batch_size=batch)
        return source.shuffled(seed=3, batch_size=batch, buffer_size=50)

    def flat(items: Any) -> list[int]:
        return [s.idx for s in items] if batch is None else [i for b in items for i in b.idx]

    full = flat(make())
    first = make()
    it = iter(first)
    consumed = flat(islice(it, 13))
    state = first.state_dict()
    assert state["delivered"] == len(consumed)
    second = make()
    second.load_state_dict(state)
    assert consumed + flat(second) == full


@pytest.mark.parametrize("mode", ["ordered", "shuffled"])
def test_start_counts_delivered_samples_after_a_filter(ds: atdata.Dataset[Item], mode: str) -> None:
    even = ds.filter(keep_even)
    make = even.ordered if mode == "ordered" else (lambda **kw: even.shuffled(seed=1, **kw))
    full = [s.idx for s in make()]
    for start in (1, 22, 300):
        got = [s.idx for s in make(start=start)]
        assert got == full[start:]  # before: start counted stored samples, 22 came twice


def _fake_torch(worker: int, num_workers: int) -> types.ModuleType:
    module = types.ModuleType("torch")
    info = types.SimpleNamespace(id=worker, num_workers=num_workers)
    module.utils = types.SimpleNamespace(  # type: ignore[attr-defined]
        data=types.SimpleNamespace(get_worker_info=lambda: info)
    )
    return module


@pytest.mark.parametrize("mode", ["ordered", "shuffled"])
@pytest.mark.parametrize(("workers", "world"), [(2, 1), (1, 2), (2, 2)])
def test_start_is_global_with_several_workers_and_ranks(
    ds: atdata.Dataset[Item], monkeypatch: pytest.MonkeyPatch, mode: str, workers: int, world: int
) -> None:
    def make(rank: int, start: int = 0) -> atdata.Loader[Item]:
        if mode == "ordered":
            return ds.ordered(batch_size=B, start=start, rank=rank, world_size=world)
        return ds.shuffled(seed=5, batch_size=B, start=start, rank=rank, world_size=world)

    full = [i for b in make(0) for i in b.idx] if world == 1 else None
    order = [i for b in ds.shuffled(seed=5, batch_size=B) for i in b.idx]
    if mode == "ordered":
        order = list(range(N))
    del full
    start = 5 * B * world * workers + 3
    parts: list[int] = []
    for rank in range(world):
        for worker in range(workers):
            with monkeypatch.context() as m:
                m.setitem(__import__("sys").modules, "torch", _fake_torch(worker, workers))
                parts += [i for b in make(rank, start) for i in b.idx]
    # before: ordered raised, and shuffled skipped `start` in *each* worker
    assert sorted(parts) == sorted(order[start:])


def test_dictsample_resume_with_several_readers_is_refused(ds: atdata.Dataset[Item]) -> None:
    untyped = atdata.Dataset(ds.urls)
    with pytest.raises(PlanError):
        list(untyped.ordered(start=3, rank=0, world_size=2))


def test_remote_shards_shuffle_and_resume_over_http(ds: atdata.Dataset[Item]) -> None:
    from http_server import serve_directory

    root = Path(ds.urls[0]).parent
    with serve_directory(root) as server:
        remote = atdata.Dataset[Item]([server.url_for(Path(u).name) for u in ds.urls])
        kw: dict[str, Any] = {"batch_size": B, "shuffle": True, "seed": 4, "drop_last": False}
        full = _flat(ids(remote.to_torch(**kw)))
        assert sorted(full) == list(range(N))
        assert full == _flat(ids(ds.to_torch(**kw)))  # the same order as the local copy
        server.reset()
        dl = loader(remote.to_torch(**kw), num_workers=2)
        consumed = _flat(ids(islice(dl, 30)))
        resumed = loader(remote.to_torch(**kw))
        resumed.load_state_dict(dl.state_dict())
        server.reset()
        rest = _flat(ids(resumed))
        assert consumed + rest == full
        # a window's batches share one ranged request per shard: far fewer requests than samples
        assert server.count("GET") < len(rest) // 4


@pytest.mark.parametrize("mode", ["ordered", "shuffled"])
def test_loader_ranks_save_one_state_and_resume_over_another_world_size(
    ds: atdata.Dataset[Item], mode: str
) -> None:
    def make(rank: int, world: int) -> atdata.Loader[Item]:
        if mode == "ordered":
            return ds.ordered(batch_size=B, rank=rank, world_size=world)
        return ds.shuffled(seed=6, batch_size=B, rank=rank, world_size=world)

    consumed: list[int] = []
    states = []
    for rank in range(2):
        loader_ = make(rank, 2)
        consumed += [i for b in islice(iter(loader_), 9) for i in b.idx]
        states.append(loader_.state_dict())
    assert states[0]["position"] == states[1]["position"] == 9 * 2 * B
    rest: list[int] = []
    for rank in range(3):
        resumed = make(rank, 3)
        resumed.load_state_dict(states[0])
        rest += [i for b in resumed for i in b.idx]
    assert sorted(consumed + rest) == list(range(N))  # Loader: nothing dropped ("spread")
