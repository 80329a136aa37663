"""``atdata.torch.feed``: reader threads in the training process deliver exactly the torch
dataset's batches (same order, same state), in buffers that are reused only once released."""

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import atdata  # noqa: E402
from atdata import NDArray  # noqa: E402
from atdata.errors import SchemaError  # noqa: E402
from atdata.torch.feed import feed  # noqa: E402


@atdata.packable
class Pic:
    image: Annotated[NDArray[np.uint8], atdata.Shape(64, 64, 4)]  # 16 KiB rows: copied one by one
    vec: Annotated[NDArray[np.float32], atdata.Shape(3)]  # small rows: gathered in one join
    label: int
    name: str


@atdata.packable
class BadPic:  # the same fields, but a label that is not an int
    image: Annotated[NDArray[np.uint8], atdata.Shape(64, 64, 4)]
    vec: Annotated[NDArray[np.float32], atdata.Shape(3)]
    label: str
    name: str


def pic(i: int) -> Pic:
    image = np.full((64, 64, 4), i % 251, dtype=np.uint8)
    return Pic(image, np.asarray([i, -i, 0.5], dtype=np.float32), i, f"pic-{i}")


def write(root: Path, sizes: list[int], bad: int | None = None) -> atdata.Dataset[Pic]:
    start = 0
    for n, size in enumerate(sizes):
        samples: list[Any] = [pic(i) for i in range(start, start + size)]
        if bad is not None and start <= bad < start + size:
            good = samples[bad - start]
            samples[bad - start] = BadPic(good.image, good.vec, "oops", good.name)
        atdata.write_samples(
            samples, str(root / f"p{n:02d}-%06d.tar"), maxcount=size, key_field="name"
        )
        start += size
    return atdata.Dataset[Pic](str(root / "p*.tar"))


def check_batch(batch: dict[str, Any]) -> None:
    """Every column agrees with the labels (a reused buffer would show another batch's rows)."""
    labels = batch["label"].tolist()
    assert batch["image"].shape == (len(labels), 64, 64, 4)
    assert batch["image"][:, 0, 0, 0].tolist() == [i % 251 for i in labels]
    assert batch["image"].flatten(1).min(1).values.tolist() == [i % 251 for i in labels]
    assert batch["vec"][:, 0].tolist() == [float(i) for i in labels]
    assert batch["name"] == batch["__key__"] == [f"pic-{i}" for i in labels]


@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("rank", [0, 1])
def test_feed_delivers_the_torch_datasets_batches(tmp_path: Path, shuffle: bool, rank: int) -> None:
    ds = write(tmp_path, [37, 50, 13, 61, 29])
    plan = dict(shuffle=shuffle, seed=3, drop_last=False, rank=rank, world_size=2)
    expected = [b["label"].tolist() for b in ds.to_torch(batch_size=16, **plan)]
    f = feed(ds, 16, threads=3, prefetch=2, **plan)
    held = list(f)  # every batch kept alive: no buffer may be handed out twice
    assert [b["label"].tolist() for b in held] == expected
    assert len(held) == len(f) == len(expected)
    for b in held:
        check_batch(b)
        assert isinstance(b["image"], torch.Tensor) and b["image"].dtype == torch.uint8


def test_buffers_are_reused_once_released(tmp_path: Path) -> None:
    ds = write(tmp_path, [200])
    f = feed(ds, 8, threads=2, prefetch=2)
    pointers = set()
    for b in f:  # the loop drops each batch before taking the next
        check_batch(b)
        pointers.add(b["image"].data_ptr())
    assert len(pointers) < len(f)  # a bounded set of buffers served 25 batches


def test_state_moves_between_the_feed_and_the_dataloader(tmp_path: Path) -> None:
    ds = write(tmp_path, [37, 50, 13, 61, 29])
    everything = sorted(range(190))
    plan = dict(shuffle=True, seed=1, drop_last=False)
    f = feed(ds, 10, threads=2, **plan)
    seen: list[int] = []
    for n, b in enumerate(f):
        seen += b["label"].tolist()
        if n == 6:
            state = f.state_dict()
            break
    assert state["position"] == 70
    # the rest through a DataLoader with workers, in a world of 2 ranks
    rest: list[int] = []
    for rank in range(2):
        tds = ds.to_torch(10, rank=rank, world_size=2, **plan)
        loader = atdata.torch.loader(tds, num_workers=2)
        loader.load_state_dict(state)
        rest += [i for b in loader for i in b["label"].tolist()]
    assert sorted(seen + rest) == everything
    # and from a DataLoader's state back into a feed
    loader = atdata.torch.loader(ds.to_torch(10, **plan), num_workers=2)
    head = []
    for n, b in enumerate(loader):
        head += b["label"].tolist()
        if n == 3:
            state = loader.state_dict()
            break
    g = feed(ds, 10, **plan)
    g.load_state_dict(state)
    assert sorted(head + [i for b in g for i in b["label"].tolist()]) == everything


def test_a_bad_sample_is_named_or_skipped(tmp_path: Path) -> None:
    ds = write(tmp_path, [30, 11, 1, 18], bad=41)  # one writer holds one type: its own shard
    with pytest.raises(SchemaError, match=r"\$\.label") as info:
        for _ in feed(ds, 8, threads=2):
            pass
    assert "pic-41" in str(info.value) and "p02-000000.tar" in str(info.value)
    skipped = ds.with_on_error("skip")
    labels = [i for b in feed(skipped, 8, drop_last=False) for i in b["label"].tolist()]
    assert sorted(labels) == [i for i in range(60) if i != 41]


def test_map_stages_and_cpu_without_pinning(tmp_path: Path) -> None:
    ds = write(tmp_path, [20])

    def brighten(p: Pic) -> Pic:
        return Pic(p.image + 1, p.vec, p.label, p.name)

    f = feed(ds.map(brighten), 5, device="cpu", pin_memory=True)
    assert not f.pin_memory or torch.cuda.is_available()
    batches = list(f)
    assert [b["label"].tolist() for b in batches] == [list(range(i, i + 5)) for i in (0, 5, 10, 15)]
    assert batches[0]["image"][:, 0, 0, 0].tolist() == [1, 2, 3, 4, 5]


def test_stopping_early_stops_the_readers(tmp_path: Path) -> None:
    import threading

    ds = write(tmp_path, [100])
    f = feed(ds, 4, threads=3, prefetch=2)
    it = iter(f)
    next(it)
    it.close()  # the training loop breaks out
    assert not [t for t in threading.enumerate() if t.name.startswith("atdata-feed-")]


@atdata.packable
class Blob:
    label: int
    payload: Any  # untyped: a large bytes value arrives as a top-level msgpack bin


def test_untyped_fields_arrive_as_bytes_like_from_the_loader(tmp_path: Path) -> None:
    """Large bodies are decoded without copying; the feed still hands out bytes, not views
    into the shard mapping, exactly as the regular loader does."""
    samples = [Blob(i, bytes([i]) * 70_000) for i in range(12)]
    atdata.write_samples(samples, str(tmp_path / "b-%06d.tar"), maxcount=12)
    ds = atdata.Dataset[Blob](str(tmp_path / "b-*.tar"))
    fed = [
        (label, p)
        for b in feed(ds, 4, drop_last=False)
        for label, p in zip(b["label"].tolist(), b["payload"], strict=True)
    ]
    loaded = [(s.label, s.payload) for s in ds.ordered()]
    assert sorted(fed) == loaded == [(i, bytes([i]) * 70_000) for i in range(12)]
    assert {type(p) for _, p in fed} == {bytes}
