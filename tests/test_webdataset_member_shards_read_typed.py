"""Shards written by ``webdataset``'s own ``ShardWriter``/``TarWriter`` (Pillow JPEGs, class
labels, JSON, text, ``.npy``) read by atdata as typed samples and as DictSamples, in every
reading mode: ``len``, ``ds[i]``, ``get``, ordered, shuffled, batches, map/filter, lenses, ranks,
resume, torch."""

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import webdataset as wds
from numpy.typing import NDArray
from PIL import Image

import atdata
from atdata import AtdataWarning, Dataset, DictSample, SchemaError

N = 23


@atdata.packable
class Photo:
    image: bytes = atdata.member("jpg", "jpeg", "png", "webp")
    caption: str = atdata.member("txt")
    label: int = atdata.member("cls")
    meta: dict[str, Any] = atdata.member("json")
    embedding: NDArray[np.float32] | None = atdata.member("npy", default=None)


@atdata.packable
class Labelled:
    label: int
    caption: str


def _jpeg(i: int) -> bytes:
    pixels = np.full((16, 12, 3), (i * 10) % 256, dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def _sample(i: int) -> dict[str, Any]:
    sample: dict[str, Any] = {
        "__key__": f"img{i:05d}",
        "jpg": _jpeg(i),
        "txt": f"a photo number {i} — ünïcode",
        "cls": i % 5,
        "json": {"i": i, "tags": ["x"] * (i % 3)},
    }
    if i % 2:
        sample["npy"] = np.arange(i, dtype=np.float32)
    return sample


@pytest.fixture(scope="module")
def wds_shards(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("wds")
    with wds.ShardWriter(str(root / "photos-%06d.tar"), maxcount=7, verbose=0) as sink:
        for i in range(N):
            sink.write(_sample(i))
    return sorted(str(p) for p in root.glob("photos-*.tar"))


def _check(photo: Photo, i: int) -> None:
    want = _sample(i)
    assert photo.image == want["jpg"]
    assert photo.caption == want["txt"] and photo.label == want["cls"]
    assert photo.meta == want["json"]
    if "npy" in want:
        assert photo.embedding is not None
        np.testing.assert_array_equal(photo.embedding, want["npy"])
    else:
        assert photo.embedding is None


def test_typed_random_access_and_iteration_agree(wds_shards: list[str]) -> None:
    ds = Dataset[Photo](wds_shards)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)
        assert len(ds) == N
        ordered = list(ds.ordered())
        assert [p.label for p in ordered] == [i % 5 for i in range(N)]
        for i in range(N):
            _check(ordered[i], i)
            _check(ds[i], i)
            _check(ds.get(f"img{i:05d}"), i)
        _check(ds[-1], N - 1)
        with pytest.raises(IndexError):
            ds[N]
        with pytest.raises(KeyError):
            ds.get("nope")


def test_shuffled_batches_and_stages(wds_shards: list[str]) -> None:
    ds = Dataset[Photo](wds_shards)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)
        shuffled = [p.meta["i"] for p in ds.shuffled(seed=3)]
        assert sorted(shuffled) == list(range(N)) and shuffled != list(range(N))
        assert shuffled == [p.meta["i"] for p in ds.shuffled(seed=3)]  # a pure function
        batches = list(ds.ordered(batch_size=5))
        assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
        np.testing.assert_array_equal(batches[0].label, [0, 1, 2, 3, 4])
        assert batches[1].caption[0] == _sample(5)["txt"]
        assert batches[0].keys == [f"img{i:05d}" for i in range(5)]
        odd = ds.filter(lambda p: p.label == 1).map(lambda p: p.meta["i"], int)
        assert list(odd.ordered()) == [i for i in range(N) if i % 5 == 1]
        assert sum(len(b) for b in ds.shuffled(seed=1, batch_size=4, drop_last=True)) == 20


def test_lenses_view_member_samples(wds_shards: list[str]) -> None:
    registry = atdata.LensRegistry()
    with registry.use():

        @atdata.lens
        def to_labelled(p: Photo) -> Labelled:
            return Labelled(label=p.label, caption=p.caption)

    ds = Dataset[Photo](wds_shards).as_type(Labelled, registry=registry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)
        assert [s.label for s in ds.ordered()] == [i % 5 for i in range(N)]
        assert ds[3] == Labelled(label=3, caption=_sample(3)["txt"])


def test_ranks_split_the_epoch_and_resume_is_exact(wds_shards: list[str]) -> None:
    ds = Dataset[Photo](wds_shards)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)
        seen = [
            [
                m["i"]
                for b in ds.shuffled(seed=2, batch_size=3, rank=r, world_size=2)
                for m in b.meta
            ]
            for r in range(2)
        ]
        assert sorted(seen[0] + seen[1]) == list(range(N))  # each sample to exactly one rank
        everything = [p.meta["i"] for p in ds.shuffled(seed=2)]
        loader = ds.shuffled(seed=2, batch_size=4)
        it = iter(loader)
        first = [next(it), next(it)]
        state = loader.state_dict()
        again = ds.shuffled(seed=2, batch_size=4)
        again.load_state_dict(state)
        rest = list(again)
        got = [m["i"] for b in first + rest for m in b.meta]
        assert got == everything
        assert [p.meta["i"] for p in ds.ordered(start=20)] == [20, 21, 22]


def test_torch_loader_yields_member_batches(wds_shards: list[str]) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tds = Dataset[Photo](wds_shards).to_torch(batch_size=4, drop_last=False)
        batches = list(DataLoader(tds, batch_size=None, num_workers=2))
    assert all(isinstance(b["label"], torch.Tensor) for b in batches)
    labels = [int(x) for b in batches for x in b["label"]]
    assert sorted(labels) == sorted(i % 5 for i in range(N))
    assert sorted(k for b in batches for k in b["__key__"]) == [f"img{i:05d}" for i in range(N)]


def test_untyped_reads_decode_each_member_by_extension(wds_shards: list[str]) -> None:
    ds = Dataset(wds_shards)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)
        samples = list(ds.ordered())
        assert len(ds) == len(samples) == N
        for i, s in enumerate(samples):
            want = _sample(i)
            assert isinstance(s, DictSample)
            assert s["jpg"] == want["jpg"] and s["txt"] == want["txt"]
            assert s["cls"] == want["cls"] and s["json"] == want["json"]
            assert ds[i] == s and ds.get(want["__key__"]) == s
            if "npy" in want:
                np.testing.assert_array_equal(s["npy"], want["npy"])
        typed = ds.as_type(Photo)  # the same shards, typed after the fact
        _check(typed[7], 7)


def test_a_missing_required_member_names_the_key_and_extension(tmp_path: Path) -> None:
    path = str(tmp_path / "gap.tar")
    with wds.TarWriter(path) as sink:
        for i in range(4):
            s = _sample(i)
            if i == 2:
                del s["cls"]
            sink.write(s)
    ds = Dataset[Photo](path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)
        with pytest.raises(SchemaError) as info:
            list(ds.ordered())
        assert "img00002" in str(info.value) and ".cls" in str(info.value)
        with pytest.raises(SchemaError, match="img00002"):
            ds[2]
        skipped = Dataset[Photo](path, on_error="skip")
        assert [p.meta["i"] for p in skipped.ordered()] == [0, 1, 3]
        assert sorted(m["i"] for b in skipped.shuffled(seed=1, batch_size=8) for m in b.meta) == [
            0,
            1,
            3,
        ]
    with pytest.warns(AtdataWarning, match="img00002"):
        list(Dataset[Photo](path, on_error="warn").ordered())


def test_an_index_rebuilds_the_member_view_with_no_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    with atdata.Index() as index:
        entry = index.write([Photo(**_fields(i)) for i in range(6)], "photos")
        assert index.get_schema(entry.schema_ref).schema.layout == "members"
    loaded = atdata.load_dataset("@local/photos")["train"]
    assert loaded.sample_type is not Photo and loaded.sample_type.__name__ == "Photo"
    assert [s.label for s in loaded.ordered()] == [i % 5 for i in range(6)]
    assert loaded[5].caption == _sample(5)["txt"]
    np.testing.assert_array_equal(loaded[3].embedding, np.arange(3, dtype=np.float32))
    # the shards are plain WebDataset: webdataset reads them with its own decoders
    got = list(wds.WebDataset(entry.urls, shardshuffle=False).decode("rgb8"))
    assert [int(s["cls"]) for s in got] == [i % 5 for i in range(6)]
    assert got[0]["jpg"].shape == (16, 12, 3)


def _fields(i: int) -> dict[str, Any]:
    s = _sample(i)
    return {
        "image": s["jpg"],
        "caption": s["txt"],
        "label": s["cls"],
        "meta": s["json"],
        "embedding": s.get("npy"),
    }


def test_the_device_feed_reads_member_batches(wds_shards: list[str]) -> None:
    pytest.importorskip("torch")
    from atdata.torch.feed import feed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)
        batches = list(feed(Dataset[Photo](wds_shards), 6, threads=2, drop_last=False))
    assert [int(x) for b in batches for x in b["label"]] == [i % 5 for i in range(N)]
    assert [k for b in batches for k in b["__key__"]] == [f"img{i:05d}" for i in range(N)]
