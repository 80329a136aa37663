"""Reading a dataset: sources, ordered/shuffled/batched modes, random access, resume and plans."""

import os
import shutil
import sys
import types
import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest

import atdata
from atdata import AtdataWarning, Dataset, DictSample, NDArray, SampleBatch, Shape
from atdata.plan import Consumer, Plan, make_plan

N = 53
PER_SHARD = 10
NUM_SHARDS = 6


@atdata.packable
class Rec:
    key: str
    idx: int
    emb: Annotated[NDArray[np.float32], Shape(4)]
    label: str


@atdata.packable
class Small:
    idx: int


@atdata.packable
class Ragged:
    idx: int
    values: NDArray[np.int32]
    maybe: NDArray[np.float32] | None


def _rec(i: int) -> Rec:
    return Rec(f"k{i:03d}", i, np.arange(4, dtype=np.float32) + i, f"label-{i % 5}")


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("reading")
    infos = atdata.write_samples(
        (_rec(i) for i in range(N)), str(d / "s-%06d.tar"), maxcount=PER_SHARD, key_field="key"
    ).shard_infos
    assert len(infos) == NUM_SHARDS
    return d


@pytest.fixture()
def ds(shards: Path) -> Dataset[Rec]:
    return Dataset[Rec](str(shards / "s-{000000..000005}.tar"))


def _idx(items: Any) -> list[int]:
    return [s.idx for s in items]


def _batch_idx(batches: Any) -> list[int]:
    return [i for b in batches for i in b.idx]


# ------------------------------------------------------------------------------ sources
def test_subscript_and_explicit_type_forms(shards: Path) -> None:
    a = Dataset[Rec](str(shards / "s-000000.tar"))
    b = Dataset(str(shards / "s-000000.tar"), Rec)
    assert a.sample_type is Rec and b.sample_type is Rec
    sa, sb = list(a.ordered()), list(b.ordered())
    assert all(type(s) is Rec for s in sa + sb)
    assert _idx(sa) == _idx(sb) == list(range(PER_SHARD))
    untyped = Dataset(str(shards / "s-000000.tar"))
    assert untyped.sample_type is DictSample
    assert all(type(s) is DictSample for s in untyped.ordered())


def test_every_source_form_names_the_same_shards(shards: Path) -> None:
    paths = [str(shards / f"s-{n:06d}.tar") for n in range(NUM_SHARDS)]
    forms: list[Any] = [
        paths,
        [Path(p) for p in paths],
        str(shards / "s-{000000..000005}.tar"),
        str(shards / "s-*.tar"),
        str(shards / "s-00000[0-5].tar"),
        str(shards),
        shards,
    ]
    for form in forms:
        ds = Dataset[Rec](form)
        assert ds.urls == paths, form
        assert _idx(ds.ordered()) == list(range(N)), form


def test_brace_alternatives_and_lists_keep_their_order(shards: Path) -> None:
    ds = Dataset[Rec](str(shards / "s-{000002,000000}.tar"))
    assert _idx(ds.ordered()) == list(range(20, 30)) + list(range(10))
    ds = Dataset[Rec]([str(shards / "s-000001.tar"), str(shards / "s-00000{3..4}.tar")])
    assert _idx(ds.ordered()) == list(range(10, 20)) + list(range(30, 50))


def test_sources_that_match_nothing_are_errors(tmp_path: Path) -> None:
    with pytest.raises(atdata.SourceError):
        Dataset[Rec](str(tmp_path / "none-*.tar"))
    with pytest.raises(atdata.SourceError):
        Dataset[Rec](str(tmp_path))
    with pytest.raises(atdata.SourceError, match="pipe"):
        list(Dataset[Rec]("pipe:cat x.tar").ordered())


# ------------------------------------------------------------------------------ ordered / shuffled
def test_ordered_yields_storage_order(ds: Dataset[Rec]) -> None:
    samples = list(ds.ordered())
    assert _idx(samples) == list(range(N))
    assert [s.key for s in samples] == [f"k{i:03d}" for i in range(N)]
    assert np.array_equal(samples[7].emb, np.arange(4, dtype=np.float32) + 7)
    assert _idx(ds) == list(range(N))  # iterating the dataset is ordered()
    loader = ds.ordered()
    assert _idx(loader) == _idx(loader)  # re-iterable


def test_shuffled_same_seed_same_order(ds: Dataset[Rec]) -> None:
    a = _idx(ds.shuffled(seed=7, buffer_size=8))
    b = _idx(ds.shuffled(seed=7, buffer_size=8))
    assert a == b
    assert a != list(range(N))


def test_shuffled_is_exactly_once(ds: Dataset[Rec]) -> None:
    for seed in range(4):
        for buffer_size in (1, 5, 1000):
            keys = [s.key for s in ds.shuffled(seed=seed, buffer_size=buffer_size)]
            assert sorted(keys) == [f"k{i:03d}" for i in range(N)]


def test_different_seed_or_epoch_gives_a_different_order(ds: Dataset[Rec]) -> None:
    base = _idx(ds.shuffled(seed=1, buffer_size=16))
    assert _idx(ds.shuffled(seed=2, buffer_size=16)) != base
    assert _idx(ds.shuffled(seed=1, buffer_size=16, epoch=1)) != base
    loader = ds.shuffled(seed=1, buffer_size=16)
    loader.set_epoch(1)
    assert _idx(loader) == _idx(ds.shuffled(seed=1, buffer_size=16, epoch=1))
    loader.set_epoch(0)
    assert _idx(loader) == base


def test_shuffle_permutes_shards_and_mixes_within_the_buffer(ds: Dataset[Rec]) -> None:
    # with a buffer of one, the order is whole shards, each in storage order, shards permuted
    order = _idx(ds.shuffled(seed=3, buffer_size=1))
    shard_order = list(dict.fromkeys(i // PER_SHARD for i in order))
    assert sorted(shard_order) == list(range(NUM_SHARDS))
    assert shard_order != list(range(NUM_SHARDS))
    expected = [
        i
        for shard in shard_order
        for i in range(shard * PER_SHARD, min(N, (shard + 1) * PER_SHARD))
    ]
    assert order == expected
    # a large buffer mixes samples of different shards
    mixed = _idx(ds.shuffled(seed=3, buffer_size=100))
    assert mixed != order
    assert sorted(mixed) == list(range(N))


def test_invalid_arguments_are_refused(ds: Dataset[Rec]) -> None:
    with pytest.raises(ValueError):
        ds.ordered(batch_size=0)
    with pytest.raises(ValueError):
        ds.ordered(start=-1)
    with pytest.raises(ValueError):
        ds.shuffled(buffer_size=0)
    with pytest.raises(ValueError):
        Dataset[Rec](ds.urls, on_error="ignore")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ batches
def test_batches_stack_arrays_and_list_scalars(ds: Dataset[Rec]) -> None:
    batches = list(ds.ordered(batch_size=8))
    assert [len(b) for b in batches] == [8] * 6 + [5]
    b = batches[1]
    assert isinstance(b, SampleBatch)
    assert b.sample_type is Rec
    assert isinstance(b.emb, np.ndarray)
    assert b.emb.shape == (8, 4) and b.emb.dtype == np.float32
    assert np.array_equal(b.emb, np.stack([_rec(i).emb for i in range(8, 16)]))
    assert b.idx == list(range(8, 16))
    assert b.label == [f"label-{i % 5}" for i in range(8, 16)]
    assert b.keys == [f"k{i:03d}" for i in range(8, 16)]
    assert b["idx"] == b.idx
    assert _idx(b) == list(range(8, 16))
    assert [s.key for s in b.samples] == b.key
    with pytest.raises(AttributeError, match="nope"):
        _ = b.nope


def test_last_partial_batch_and_drop_last(ds: Dataset[Rec]) -> None:
    assert [len(b) for b in ds.ordered(batch_size=10)] == [10] * 5 + [3]
    assert [len(b) for b in ds.ordered(batch_size=10, drop_last=True)] == [10] * 5
    assert [len(b) for b in ds.shuffled(seed=0, batch_size=10, drop_last=True)] == [10] * 5
    assert _batch_idx(ds.ordered(batch_size=N + 10)) == list(range(N))


def test_shuffled_batches_are_exactly_once(ds: Dataset[Rec]) -> None:
    batches = list(ds.shuffled(seed=5, batch_size=7, buffer_size=9))
    assert sorted(_batch_idx(batches)) == list(range(N))
    for b in batches:
        assert np.array_equal(b.emb[:, 0], np.asarray(b.idx, np.float32))
        assert b.keys == [f"k{i:03d}" for i in b.idx]


def test_batches_of_dict_samples_are_lists(shards: Path) -> None:
    ds = Dataset(str(shards / "s-000000.tar"))
    batches = list(ds.ordered(batch_size=4))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert all(type(s) is DictSample for s in batches[0])


def test_zero_d_array_fields_stack_into_a_vector(tmp_path: Path) -> None:
    @atdata.packable
    class Scalar:
        v: NDArray[np.float64]

    atdata.write_samples(
        [Scalar(np.array(float(i))) for i in range(5)], str(tmp_path / "z-%06d.tar")
    )
    (b,) = Dataset[Scalar](str(tmp_path / "z-000000.tar")).ordered(batch_size=5)
    assert b.v.shape == (5,)
    assert b.v.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


# ------------------------------------------------------------------------------ map / filter
def _plus_100(s: Rec) -> Rec:
    return Rec(s.key, s.idx + 100, s.emb * 2, s.label)


def test_map_and_filter_in_ordered_mode(ds: Dataset[Rec]) -> None:
    assert _idx(ds.map(_plus_100).ordered()) == [i + 100 for i in range(N)]
    assert _idx(ds.filter(lambda s: s.idx % 4 == 0).ordered()) == list(range(0, N, 4))
    chained = ds.filter(lambda s: s.idx % 2 == 0).map(_plus_100).filter(lambda s: s.idx < 120)
    assert _idx(chained.ordered()) == list(range(100, 120, 2))


def test_map_and_filter_in_shuffled_mode(ds: Dataset[Rec]) -> None:
    got = _idx(ds.filter(lambda s: s.idx % 3 == 0).map(_plus_100).shuffled(seed=4, buffer_size=6))
    assert sorted(got) == [i + 100 for i in range(0, N, 3)]
    assert got != sorted(got)


def test_map_and_filter_in_batched_modes(ds: Dataset[Rec]) -> None:
    mapped = ds.filter(lambda s: s.idx % 2 == 1).map(_plus_100)
    batches = list(mapped.ordered(batch_size=6))
    assert _batch_idx(batches) == [i + 100 for i in range(1, N, 2)]
    assert batches[0].emb.shape == (6, 4)
    assert np.array_equal(batches[0].emb[0], (np.arange(4, dtype=np.float32) + 1) * 2)
    shuffled = list(mapped.shuffled(seed=2, batch_size=6, buffer_size=4))
    assert sorted(_batch_idx(shuffled)) == [i + 100 for i in range(1, N, 2)]


def test_batch_keys_are_the_sample_keys_in_every_mode(ds: Dataset[Rec]) -> None:
    loaders = {
        "fast": ds.ordered(batch_size=5),
        "mapped": ds.map(_plus_100).ordered(batch_size=5),
        "filtered": ds.filter(lambda s: s.idx % 2 == 0).ordered(batch_size=5),
        "shuffled+mapped": ds.map(_plus_100).shuffled(seed=3, batch_size=5, buffer_size=7),
    }
    for mode, loader in loaders.items():
        for b in loader:
            assert b.keys == [s.key for s in b], mode


def test_map_to_another_type(ds: Dataset[Rec]) -> None:
    small = ds.map(lambda s: Small(s.idx * 2), Small)
    assert small.sample_type is Small
    assert _idx(small.ordered()) == [2 * i for i in range(N)]
    (b, *_) = small.ordered(batch_size=5)
    assert b.sample_type is Small and b.idx == [0, 2, 4, 6, 8]
    assert small[3].idx == 6


def test_filtered_datasets_have_no_length_or_random_access(ds: Dataset[Rec]) -> None:
    f = ds.filter(lambda s: True)
    with pytest.raises(TypeError):
        len(f)
    with pytest.raises(TypeError):
        f[0]


# ------------------------------------------------------------------------------ random access
def test_head_len_and_indexing(ds: Dataset[Rec]) -> None:
    assert _idx(ds.head(3)) == [0, 1, 2]
    assert _idx(ds.head()) == [0, 1, 2, 3, 4]
    assert ds.head(0) == []
    assert len(ds.head(1000)) == N
    assert len(ds) == N
    assert ds[0].idx == 0
    assert ds[PER_SHARD].idx == PER_SHARD  # first of the second shard
    assert ds[N - 1].idx == N - 1
    assert ds[-1].idx == N - 1
    assert ds[-N].idx == 0
    assert np.array_equal(ds[17].emb, _rec(17).emb)
    for bad in (N, -N - 1):
        with pytest.raises(IndexError):
            ds[bad]


def test_get_by_key(ds: Dataset[Rec]) -> None:
    s = ds.get("k042")
    assert type(s) is Rec and s.idx == 42
    assert ds.get("k000").idx == 0
    with pytest.raises(KeyError, match="k999"):
        ds.get("k999")
    assert ds.map(_plus_100).get("k001").idx == 101


# ------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("start", [0, 1, 9, 10, 11, 37, 50, 52])
def test_ordered_start_resumes_with_exactly_the_remaining_samples(
    ds: Dataset[Rec], start: int
) -> None:
    assert _idx(ds.ordered(start=start)) == list(range(start, N))
    assert _batch_idx(ds.ordered(batch_size=4, start=start)) == list(range(start, N))


def test_ordered_start_at_the_end_yields_nothing(ds: Dataset[Rec]) -> None:
    assert list(ds.ordered(start=N)) == []
    assert list(ds.ordered(start=N + 5, batch_size=4)) == []


@pytest.mark.parametrize("start", [1, 13, 52])
def test_shuffled_start_skips_that_many_samples(ds: Dataset[Rec], start: int) -> None:
    full = _idx(ds.shuffled(seed=9, buffer_size=12))
    assert _idx(ds.shuffled(seed=9, buffer_size=12, start=start)) == full[start:]
    assert (
        _batch_idx(ds.shuffled(seed=9, buffer_size=12, start=start, batch_size=5)) == full[start:]
    )
    assert list(ds.shuffled(seed=9, start=N)) == []


# ------------------------------------------------------------------------------ as_type
def test_as_type_from_dict_samples(shards: Path) -> None:
    untyped = Dataset(str(shards / "s-*.tar"))
    typed = untyped.as_type(Rec)
    assert typed.sample_type is Rec
    samples = list(typed.ordered())
    assert all(type(s) is Rec for s in samples)
    assert _idx(samples) == list(range(N))
    assert np.array_equal(typed[5].emb, _rec(5).emb)
    (b, *_) = typed.ordered(batch_size=10)
    assert b.emb.shape == (10, 4)
    assert typed.as_type(Rec) is typed


def test_as_type_after_a_map_of_dict_samples(shards: Path) -> None:
    untyped = Dataset(str(shards / "s-000000.tar")).map(lambda d: d)
    typed = untyped.as_type(Rec)
    assert _idx(typed.ordered()) == list(range(PER_SHARD))


def test_dict_samples_keep_bin_values_as_bytes_for_large_bodies(tmp_path: Path) -> None:
    big = np.zeros(40_000, np.float32)  # a body above the zero-copy threshold
    atdata.write_samples(
        [DictSample(i=0, arr=big, raw=b"x" * 70_000)], str(tmp_path / "big-%06d.tar")
    )
    ds = Dataset(str(tmp_path / "big-000000.tar"))
    for sample in (next(iter(ds.ordered())), ds[0], ds.get("00000000")):
        assert type(sample.raw) is bytes and sample.raw == b"x" * 70_000
        assert type(sample.arr) is bytes


# ------------------------------------------------------------------------------ ragged / None
@pytest.fixture(scope="module")
def ragged(tmp_path_factory: pytest.TempPathFactory) -> Dataset[Ragged]:
    d = tmp_path_factory.mktemp("ragged")
    samples = [
        Ragged(
            i,
            np.arange(i % 3 + 1, dtype=np.int32),
            None if i % 4 == 1 else np.full(2, i, np.float32),
        )
        for i in range(8)
    ]
    atdata.write_samples(samples, str(d / "r-%06d.tar"))
    return Dataset[Ragged](str(d / "r-000000.tar"))


def test_ragged_array_fields_give_lists(ragged: Dataset[Ragged]) -> None:
    for batches in (
        list(ragged.ordered(batch_size=4)),
        list(ragged.map(lambda s: s).ordered(batch_size=4)),
    ):
        b = batches[0]
        assert isinstance(b.values, list)
        assert [v.tolist() for v in b.values] == [[0], [0, 1], [0, 1, 2], [0]]


def test_none_in_an_optional_array_field_gives_a_list(ragged: Dataset[Ragged]) -> None:
    for batches in (
        list(ragged.ordered(batch_size=4)),
        list(ragged.map(lambda s: s).ordered(batch_size=4)),
    ):
        b = batches[0]
        assert isinstance(b.maybe, list)
        assert b.maybe[1] is None
        assert [None if m is None else m.tolist() for m in b.maybe] == [
            [0.0, 0.0],
            None,
            [2.0, 2.0],
            [3.0, 3.0],
        ]


def test_uniform_batches_of_a_ragged_type_are_stacked(ragged: Dataset[Ragged]) -> None:
    b = next(iter(ragged.filter(lambda s: s.idx % 3 == 0).ordered(batch_size=3)))
    assert b.idx == [0, 3, 6]
    assert isinstance(b.values, np.ndarray) and b.values.shape == (3, 1)
    assert isinstance(b.maybe, np.ndarray) and b.maybe.shape == (3, 2)


# ------------------------------------------------------------------------------ plans
def _consumers(num_workers: int, world_size: int) -> list[Consumer]:
    return [
        Consumer(worker=w, num_workers=num_workers, rank=r, world_size=world_size)
        for r in range(world_size)
        for w in range(num_workers)
    ]


def test_make_plan_is_a_pure_function() -> None:
    c = Consumer(1, 2, 1, 3)
    assert make_plan(10, seed=4, epoch=2, consumer=c) == make_plan(10, seed=4, epoch=2, consumer=c)
    assert make_plan(10, seed=4, epoch=2, consumer=c) != make_plan(10, seed=4, epoch=3, consumer=c)
    assert make_plan(5) == Plan((0, 1, 2, 3, 4))
    for bad in (Consumer(2, 2), Consumer(0, 1, 1, 1), Consumer(-1, 2)):
        with pytest.raises(ValueError):
            make_plan(4, consumer=bad)


@pytest.mark.parametrize(("num_workers", "world_size"), [(2, 1), (1, 3), (2, 2), (3, 2)])
@pytest.mark.parametrize("seed", [None, 11])
def test_shard_level_plans_partition_the_shards(
    num_workers: int, world_size: int, seed: int | None
) -> None:
    plans = [make_plan(13, seed=seed, consumer=c) for c in _consumers(num_workers, world_size)]
    assert sorted(s for p in plans for s in p.shards) == list(range(13))
    assert all(p.sample_stride == 1 for p in plans)


def test_sample_level_plans_when_fewer_shards_than_consumers() -> None:
    plans = [make_plan(2, seed=3, consumer=c) for c in _consumers(3, 2)]
    assert all(sorted(p.shards) == [0, 1] for p in plans)
    assert [p.sample_stride for p in plans] == [6] * 6
    assert sorted(p.sample_offset for p in plans) == list(range(6))
    assert len({p.shards for p in plans}) == 1  # everyone reads the same global order


def _fake_torch(worker: int, num_workers: int) -> types.ModuleType:
    """What ``current_consumer`` looks at inside a torch DataLoader worker process."""
    torch = types.ModuleType("torch")
    info = types.SimpleNamespace(id=worker, num_workers=num_workers)
    torch.utils = types.SimpleNamespace(  # type: ignore[attr-defined]
        data=types.SimpleNamespace(get_worker_info=lambda: info)
    )
    return torch


def _read_as(monkeypatch: pytest.MonkeyPatch, make_loader: Any, consumer: Consumer) -> list[int]:
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "torch", _fake_torch(consumer.worker, consumer.num_workers))
        loader = make_loader(consumer.rank, consumer.world_size)
        assert loader.plan() == loader.plan(consumer)
        items = list(loader)
    if items and isinstance(items[0], SampleBatch):
        return _batch_idx(items)
    return _idx(items)


@pytest.mark.parametrize(("num_workers", "world_size"), [(2, 1), (1, 2), (2, 2), (3, 2)])
@pytest.mark.parametrize(
    "mode", ["ordered", "shuffled", "ordered-batched", "shuffled-batched", "filtered"]
)
def test_consumers_together_read_every_sample_exactly_once(
    ds: Dataset[Rec], monkeypatch: pytest.MonkeyPatch, num_workers: int, world_size: int, mode: str
) -> None:
    source = ds.filter(lambda s: s.idx % 2 == 0) if mode == "filtered" else ds
    expected = list(range(0, N, 2)) if mode == "filtered" else list(range(N))

    def make_loader(rank: int, world: int) -> Any:
        batch = 4 if mode.endswith("batched") else None
        if mode.startswith("shuffled"):
            return source.shuffled(
                seed=8, buffer_size=5, batch_size=batch, rank=rank, world_size=world
            )
        return source.ordered(batch_size=batch, rank=rank, world_size=world)

    parts = [_read_as(monkeypatch, make_loader, c) for c in _consumers(num_workers, world_size)]
    assert sorted(i for p in parts for i in p) == expected
    assert all(p for p in parts)  # 6 shards over <= 6 consumers: each gets some


@pytest.mark.parametrize(("num_workers", "world_size"), [(2, 2), (4, 1), (3, 3)])
@pytest.mark.parametrize("shuffled", [False, True])
def test_sample_level_splitting_is_exactly_once(
    shards: Path, monkeypatch: pytest.MonkeyPatch, num_workers: int, world_size: int, shuffled: bool
) -> None:
    two = Dataset[Rec]([str(shards / "s-000000.tar"), str(shards / "s-000005.tar")])  # 13 samples
    expected = list(range(PER_SHARD)) + list(range(50, N))

    def make_loader(rank: int, world: int) -> Any:
        if shuffled:
            return two.shuffled(seed=1, buffer_size=3, rank=rank, world_size=world)
        return two.ordered(rank=rank, world_size=world)

    consumers = _consumers(num_workers, world_size)
    assert make_plan(2, consumer=consumers[0]).sample_stride == len(consumers)
    parts = [_read_as(monkeypatch, make_loader, c) for c in consumers]
    assert sorted(i for p in parts for i in p) == expected
    assert all(p for p in parts)
    if not shuffled:
        # rank r takes position r of every step of world_size positions, and gives its j-th
        # of them to worker j % num_workers
        for c, p in zip(consumers, parts, strict=True):
            assert p == expected[c.rank + world_size * c.worker :: len(consumers)]


def test_without_torch_there_is_a_single_consumer(
    ds: Dataset[Rec], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert ds.ordered().plan() == Plan(tuple(range(NUM_SHARDS)))
    ranks = [_idx(ds.ordered(rank=r, world_size=2)) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == list(range(N))


# ------------------------------------------------------------------------------ no sidecar
def test_a_shard_without_a_sidecar_warns_and_still_works(shards: Path, tmp_path: Path) -> None:
    for n in (0, 1):
        shutil.copy(shards / f"s-{n:06d}.tar", tmp_path / f"s-{n:06d}.tar")
    shutil.copy(shards / "s-000001.tar.idx", tmp_path / "s-000001.tar.idx")
    ds = Dataset[Rec](str(tmp_path / "s-*.tar"))
    with pytest.warns(AtdataWarning, match="s-000000.tar"):
        assert len(ds) == 2 * PER_SHARD
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the scan happens once
        assert ds[3].idx == 3
        assert ds.get("k015").idx == 15
        assert _idx(ds.ordered(start=5)) == list(range(5, 20))
    fresh = Dataset[Rec](str(tmp_path / "s-000000.tar"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a new dataset uses the cached scan ($ATDATA_HOME)
        assert fresh.get("k004").idx == 4
    assert not os.path.exists(tmp_path / "s-000000.tar.idx")  # reading never writes beside
