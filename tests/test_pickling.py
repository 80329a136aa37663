"""What crosses a process boundary pickles: samples, batches, datasets, loaders, lenses and the
types rebuilt from stored schemas, both through pickle.dumps/loads and into a spawn child."""

import hashlib
import multiprocessing
import pickle
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import atdata
from atdata import Dataset, DictSample, IntegrityError, SampleBatch, Schema
from atdata.index import Index
from http_server import FileServer
from pickling_types import (
    REGISTRY,
    Blob,
    Frame,
    Gray,
    Label,
    frame_to_gray,
    gray_to_label,
    label_plus_one,
    make_frames,
    make_tagged,
)

CHILD_TIMEOUT = 120


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture
def frame_urls(tmp_path: Path) -> list[str]:
    """Three shards of 1,000 small frames each."""
    shards = atdata.write_samples(
        make_frames(3000), str(tmp_path / "frames-%06d.tar"), maxcount=1000
    ).shard_infos
    return [s.url for s in shards]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    idx = Index(home=tmp_path / "home")
    idx.write(make_frames(300), "frames", maxcount=100)
    idx.write(make_tagged(20), "tagged")
    yield idx
    idx.close()


@pytest.fixture(scope="module")
def spawn_child() -> Iterator[ProcessPoolExecutor]:
    """One worker process started with the spawn method (it imports everything afresh)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def round_trip(obj: Any) -> Any:
    return pickle.loads(pickle.dumps(obj))


def same_batch(a: SampleBatch[Any], b: SampleBatch[Any]) -> bool:
    if a.sample_type is not b.sample_type or a.keys != b.keys or list(a.columns) != list(b.columns):
        return False
    for name, col in a.columns.items():
        other = b.columns[name]
        if isinstance(col, np.ndarray):
            if not (isinstance(other, np.ndarray) and np.array_equal(col, other)):
                return False
        elif col != other:
            return False
    return True


def same_fields(a: Any, b: Any) -> bool:
    return vars(a).keys() == vars(b).keys() and all(
        np.array_equal(v, vars(b)[k]) if isinstance(v, np.ndarray) else v == vars(b)[k]
        for k, v in vars(a).items()
    )


# ---------------------------------------------------------------------- what the children do
def child_read(ds: Dataset[Any], n: int) -> tuple[list[Any], dict[str, Any]]:
    """Read ``n`` samples in the child; return them and what the child saw."""
    samples = ds.head(n)
    stype = ds.sample_type
    seen = {
        "type": (stype.__module__, stype.__qualname__),
        "all_of_type": all(type(s) is stype for s in samples),
        "len": len(ds),
    }
    return samples, seen


def child_batches(loader: Any) -> list[Any]:
    return list(loader)


def child_lens(lens: atdata.Lens[Any, Any], sample: Any, view: Any) -> tuple[Any, Any]:
    return lens.get(sample), lens.put(view, sample)


def child_same_class(ds: Dataset[Any], batch_bytes: bytes, sample_bytes: bytes) -> list[bool]:
    """Separately pickled objects of one rebuilt type meet the same class in the child."""
    batch = pickle.loads(batch_bytes)
    sample = pickle.loads(sample_bytes)
    stype = ds.sample_type
    return [
        batch.sample_type is stype,
        type(sample) is stype,
        type(next(iter(batch))) is stype,
        stype.__module__ == "atdata.rebuilt",
    ]


# ------------------------------------------------------------------------------------- samples
def test_samples_of_user_classes_pickle_by_reference(frame_urls: list[str]) -> None:
    sample = Dataset[Frame](frame_urls)[5]
    data = pickle.dumps(sample)
    assert b"pickling_types" in data and b"Frame" in data  # the class by its import name
    back = pickle.loads(data)
    assert type(back) is Frame
    assert same_fields(back, sample) and back.brightness() == 5.0


def test_a_rebuilt_type_pickles_by_its_schema_and_is_one_class_per_process() -> None:
    schema = Schema.from_type(Frame)
    rebuilt = schema.to_sample_type()
    assert rebuilt is not Frame and rebuilt.__module__ == "atdata.rebuilt"
    assert round_trip(rebuilt) is rebuilt
    # the same schema read again (e.g. from a record) gives the same class object
    assert Schema.from_dict(schema.to_dict()).to_sample_type() is rebuilt
    sample = rebuilt(image=np.zeros((4, 4, 3), np.uint8), label=3, caption="c")
    back = round_trip(sample)
    assert type(back) is rebuilt and same_fields(back, sample)


def test_samples_of_a_class_less_index_load_pickle(index: Index) -> None:
    entry = index.get("frames")
    stype = index.get_schema_type(entry.schema_ref or "")
    ds = atdata.load_dataset("@local/frames", split="train", index=index)
    assert ds.sample_type is stype  # one class for one schema, however it was reached
    sample = ds[7]
    back = round_trip(sample)
    assert type(back) is stype and same_fields(back, sample)


def test_nested_samples_of_a_rebuilt_type_pickle(index: Index) -> None:
    ds = atdata.load_dataset("@local/tagged", split="train", index=index)
    sample = ds[3]
    assert type(sample.label).__module__ == "atdata.rebuilt"
    back = round_trip(sample)
    assert type(back) is ds.sample_type and type(back.label) is type(sample.label)
    assert (back.label.label, back.tags, back.raw) == (3, ["t3", "x"], b"\x03")


def test_dict_samples_pickle(frame_urls: list[str]) -> None:
    sample = Dataset(frame_urls)[2]
    assert isinstance(sample, DictSample)
    back = round_trip(sample)
    assert isinstance(back, DictSample) and back.keys() == sample.keys()
    assert back.label == 2 and back.image == sample.image


# ------------------------------------------------------------------------------------- batches
def test_batches_pickle_as_their_columns_and_type(frame_urls: list[str], index: Index) -> None:
    user = next(iter(Dataset[Frame](frame_urls).ordered(batch_size=16)))
    rebuilt_ds = atdata.load_dataset("@local/frames", split="train", index=index)
    rebuilt = next(iter(rebuilt_ds.shuffled(seed=1, batch_size=16)))
    for batch in (user, rebuilt):
        data = pickle.dumps(batch)
        assert b"enc_array" not in data and b"Codec" not in data
        back = pickle.loads(data)
        assert same_batch(back, batch)
        assert [s.label for s in back] == list(batch.label)
    assert user.image.shape == (16, 4, 4, 3)


def test_batches_with_nested_and_list_fields_pickle(index: Index) -> None:
    ds = atdata.load_dataset("@local/tagged", split="train", index=index)
    batch = next(iter(ds.ordered(batch_size=5)))
    back = round_trip(batch)
    assert back.keys == batch.keys and back.tags == batch.tags and back.raw == batch.raw
    assert [x.label for x in back.label] == [0, 1, 2, 3, 4]


def test_batches_of_large_samples_with_untyped_fields_pickle(tmp_path: Path) -> None:
    samples = [Blob(payload=bytes([i]) * 100_000, n=i) for i in range(4)]
    atdata.write_samples(samples, str(tmp_path / "blobs-%06d.tar"))
    batch = next(iter(Dataset[Blob](str(tmp_path / "blobs-000000.tar")).ordered(batch_size=4)))
    assert [type(p) for p in batch.payload] == [bytes] * 4  # not views into the shard
    back = round_trip(batch)
    assert back.payload == [s.payload for s in samples] and back.n == [0, 1, 2, 3]


# ------------------------------------------------------------------------------------ datasets
def test_a_dataset_pickles_small_after_len_get_and_reading(frame_urls: list[str]) -> None:
    ds = Dataset[Frame](frame_urls)
    assert len(ds) == 3000
    assert ds.get(ds.shards.offsets(2).keys[10]).label == 2010  # builds the key table
    assert sum(1 for _ in ds.ordered(batch_size=500)) == 6  # opens every shard
    data = pickle.dumps(ds)
    assert len(data) < 4096, len(data)
    for url in frame_urls:  # the counts travel with it: no offset index is read again
        Path(url + ".idx").unlink()
    back = pickle.loads(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert back.urls == ds.urls and back.sample_type is Frame and len(back) == 3000
        assert [s.label for s in back.head(3)] == [0, 1, 2]


def test_a_pickled_dataset_keeps_its_stages_type_and_error_policy(
    frame_urls: list[str],
) -> None:
    ds = (
        Dataset[Frame](frame_urls, on_error="skip")
        .map(label_plus_one)
        .as_type(Gray, registry=REGISTRY)
    )
    back = round_trip(ds)
    assert back.sample_type is Gray and back.on_error == "skip"
    got = [s.label for s in back.head(4)]
    assert got == [1, 2, 3, 4] and all(type(s) is Gray for s in back.head(2))


def test_a_pickled_dataset_still_verifies_its_checksums(
    frame_urls: list[str], http_server: FileServer
) -> None:
    name = Path(frame_urls[0]).name
    body = Path(frame_urls[0]).read_bytes()
    (http_server.root / name).write_bytes(body)
    url = http_server.url_for(name)
    good = Dataset[Frame](url, checksums={url: hashlib.sha256(body).hexdigest()})
    bad = Dataset[Frame](url, checksums={url: "0" * 64})
    assert [s.label for s in round_trip(good).head(2)] == [0, 1]
    with pytest.raises(IntegrityError):
        list(round_trip(bad).ordered(batch_size=100))


def test_a_class_less_load_dataset_result_pickles_small(index: Index) -> None:
    ds = atdata.load_dataset("@local/frames", split="train", index=index)
    assert len(ds) == 300
    data = pickle.dumps(ds)
    assert len(data) < 4096, len(data)
    back = pickle.loads(data)
    assert back.sample_type is ds.sample_type
    assert [s.label for s in back.head(3)] == [0, 1, 2]


def test_loaders_pickle_with_their_plan(frame_urls: list[str]) -> None:
    loader = Dataset[Frame](frame_urls).shuffled(seed=3, batch_size=64, epoch=2, buffer_size=100)
    back = round_trip(loader)
    assert (back.seed, back.epoch, back.batch_size, back.buffer_size) == (3, 2, 64, 100)
    assert all(same_batch(a, b) for a, b in zip(loader, back, strict=True))


# -------------------------------------------------------------------------------------- lenses
def test_decorated_lenses_pickle_by_reference() -> None:
    data = pickle.dumps(frame_to_gray)
    assert len(data) < 200 and b"frame_to_gray" in data
    assert pickle.loads(data) is frame_to_gray
    frame = make_frames(1, start=9)[0]
    back = pickle.loads(data)
    assert back.put(Gray(image=np.ones((4, 4), np.uint8), label=1), frame).caption == "frame 9"


def test_composed_lenses_pickle_as_their_parts() -> None:
    frame = make_frames(1, start=4)[0]
    for composed in (frame_to_gray.then(gray_to_label), REGISTRY.find(Frame, Label)):
        back = round_trip(composed)
        assert back.get(frame) == Label(label=4)
        written = back.put(Label(label=11), frame)
        assert (type(written), written.label, written.caption) == (Frame, 11, "frame 4")


# ------------------------------------------------------------------------------ a spawn child
def test_a_spawn_child_reads_pickled_datasets_of_user_and_rebuilt_types(
    frame_urls: list[str], index: Index, spawn_child: ProcessPoolExecutor
) -> None:
    user = Dataset[Frame](frame_urls)
    len(user)
    samples, seen = spawn_child.submit(child_read, user, 3).result(CHILD_TIMEOUT)
    assert seen == {"type": ("pickling_types", "Frame"), "all_of_type": True, "len": 3000}
    assert [type(s) for s in samples] == [Frame] * 3

    rebuilt = atdata.load_dataset("@local/frames", split="train", index=index)
    len(rebuilt)
    samples, seen = spawn_child.submit(child_read, rebuilt, 3).result(CHILD_TIMEOUT)
    assert seen == {"type": ("atdata.rebuilt", "Frame"), "all_of_type": True, "len": 300}
    # what the child sends back is of this process's class for the same schema
    assert all(type(s) is rebuilt.sample_type for s in samples)
    assert [s.label for s in samples] == [0, 1, 2]

    schema_free = Dataset(frame_urls)
    samples, seen = spawn_child.submit(child_read, schema_free, 2).result(CHILD_TIMEOUT)
    assert seen["all_of_type"] and [s.label for s in samples] == [0, 1]


def test_a_spawn_child_meets_one_class_per_schema(
    index: Index, spawn_child: ProcessPoolExecutor
) -> None:
    ds = atdata.load_dataset("@local/tagged", split="train", index=index)
    batch = next(iter(ds.ordered(batch_size=4)))
    checks = spawn_child.submit(
        child_same_class, ds, pickle.dumps(batch), pickle.dumps(ds[1])
    ).result(CHILD_TIMEOUT)
    assert checks == [True, True, True, True]


def test_a_spawn_child_iterates_a_pickled_loader_and_sends_batches_back(
    frame_urls: list[str], index: Index, spawn_child: ProcessPoolExecutor
) -> None:
    for ds in (
        Dataset[Frame](frame_urls),
        atdata.load_dataset("@local/frames", split="train", index=index),
    ):
        loader = ds.shuffled(seed=5, batch_size=50, buffer_size=64)
        here = list(loader)
        there = spawn_child.submit(child_batches, loader).result(CHILD_TIMEOUT)
        assert len(there) == len(here) and all(
            same_batch(a, b) for a, b in zip(here, there, strict=True)
        )


def test_a_spawn_child_applies_pickled_lenses(
    index: Index, spawn_child: ProcessPoolExecutor
) -> None:
    frame = make_frames(1, start=6)[0]
    composed = frame_to_gray.then(gray_to_label)
    view, written = spawn_child.submit(child_lens, composed, frame, Label(label=2)).result(
        CHILD_TIMEOUT
    )
    assert view == Label(label=6) and (written.label, written.caption) == (2, "frame 6")

    gray_view = index.load("frames").as_type(Gray, registry=REGISTRY)
    samples, seen = spawn_child.submit(child_read, gray_view, 2).result(CHILD_TIMEOUT)
    assert seen["type"] == ("pickling_types", "Gray") and seen["all_of_type"]
    assert [s.label for s in samples] == [0, 1]
