"""Conversion with HF ``datasets``: ``ds.to_hf()`` and ``atdata.from_hf`` keep dtypes, shapes,
strings, ints, bytes and images, stream (an IterableDataset is never materialised), and refuse
what they cannot type with a clear error."""

import os
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest

import atdata
from atdata import NDArray, Shape
from waiting import wait_until

datasets = pytest.importorskip("datasets")
pytest.importorskip("PIL")


@atdata.packable
class Everything:
    half: Annotated[NDArray[np.float16], Shape(2, 3)]
    small: Annotated[NDArray[np.int8], Shape(None, 4)]
    cube: Annotated[NDArray[np.uint8], Shape(None, 2, 2)]
    flags: Annotated[NDArray[np.bool_], Shape(None)]
    ragged: Annotated[NDArray[np.float32], Shape(None, None)]
    image: atdata.Image
    name: str
    count: int
    score: float
    raw: bytes
    tags: list[str]


def _sample(i: int) -> Everything:
    rng = np.random.default_rng(i)
    return Everything(
        half=rng.standard_normal((2, 3)).astype(np.float16),
        small=np.full((i + 1, 4), -i, np.int8),
        cube=rng.integers(0, 256, (i + 1, 2, 2), dtype=np.uint8),
        flags=np.array([True, False, True][: i % 3 + 1]),
        ragged=rng.standard_normal((i % 3 + 1, i % 2 + 2)).astype(np.float32),
        image=atdata.Image.encode(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8), format="png"),
        name=f"sample-{i}",
        count=i * 1000,
        score=i / 3,
        raw=bytes([i, 0, 0]),  # trailing NULs survive
        tags=["t"] * (i % 3),
    )


ARRAYS = ("half", "small", "cube", "flags", "ragged")


def _assert_same(a: Any, b: Any) -> None:
    for f in ARRAYS:
        x, y = getattr(a, f), getattr(b, f)
        assert y.dtype == x.dtype and y.shape == x.shape and np.array_equal(x, y), f
    assert b.image.data == a.image.data
    assert (b.name, b.count, b.score, b.raw, list(b.tags)) == (
        a.name,
        a.count,
        a.score,
        a.raw,
        list(a.tags),
    )


@pytest.fixture
def written(tmp_path: Path) -> atdata.Dataset[Everything]:
    return atdata.write_samples([_sample(i) for i in range(6)], tmp_path / "src" / "d.tar")


def test_features_follow_the_schema(written: atdata.Dataset[Everything], tmp_path: Path) -> None:
    hf = written.to_hf(cache_dir=str(tmp_path / "cache"))
    f = hf.features
    assert isinstance(hf, datasets.Dataset) and hf.num_rows == 6
    assert f["half"] == datasets.Array2D((2, 3), "float16")
    assert f["small"] == datasets.Array2D((None, 4), "int8")
    assert f["cube"] == datasets.Array3D((None, 2, 2), "uint8")
    assert f["flags"] == datasets.List(datasets.Value("bool"))
    assert f["ragged"] == datasets.List(datasets.List(datasets.Value("float32")))
    assert isinstance(f["image"], datasets.Image)
    assert f["raw"] == datasets.Value("binary")
    assert (f["name"], f["count"], f["score"]) == (
        datasets.Value("string"),
        datasets.Value("int64"),
        datasets.Value("float64"),
    )
    row = hf[3]
    assert row["name"] == "sample-3" and row["raw"] == bytes([3, 0, 0])
    assert np.asarray(row["image"]).shape == (5, 7, 3)  # datasets decodes it to PIL


def test_round_trip_typed_by_the_features(
    written: atdata.Dataset[Everything], tmp_path: Path
) -> None:
    hf = written.to_hf(cache_dir=str(tmp_path / "cache"))
    back = atdata.from_hf(hf, tmp_path / "back/", progress=False)
    assert back.sample_type is not Everything  # built from the features, no class given
    schema = atdata.Schema.from_type(back.sample_type)
    assert schema.field("cube").type.shape == (None, 2, 2)
    assert schema.field("half").type.dtype == np.dtype(np.float16).str
    assert schema.field("image").type.kind == "image"
    got = list(back)
    assert len(got) == 6
    for a, b in zip(written, got, strict=True):
        _assert_same(a, b)


def test_round_trip_through_an_iterable_dataset_into_a_given_type(
    written: atdata.Dataset[Everything], tmp_path: Path
) -> None:
    stream = written.to_hf(streaming=True)
    assert isinstance(stream, datasets.IterableDataset)
    back = atdata.from_hf(stream, tmp_path / "out-%06d.tar", sample_type=Everything, maxcount=4)
    assert back.sample_type is Everything and len(back.shard_infos) == 2
    for a, b in zip(written, back, strict=True):
        _assert_same(a, b)


def test_from_hf_into_an_index(
    written: atdata.Dataset[Everything], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    with atdata.Index() as index:
        entry = atdata.from_hf(written.to_hf(streaming=True), index=index, name="converted")
        loaded = list(index.load(entry))
    assert len(loaded) == 6
    for a, b in zip(written, loaded, strict=True):
        _assert_same(a, b)


def test_to_hf_streaming_reads_only_what_is_taken(tmp_path: Path) -> None:
    @atdata.packable
    class Row:
        i: int

    ds = atdata.write_samples([Row(i) for i in range(5000)], tmp_path / "r-%06d.tar", maxcount=500)
    read: list[int] = []

    def seen(row: Row) -> Row:
        read.append(row.i)
        return row

    stream = ds.map(seen, Row).to_hf(streaming=True)
    first = [r["i"] for r in stream.take(3)]
    assert first == [0, 1, 2]
    assert len(read) < 1000  # the shards were not read through


def test_from_hf_writes_shards_while_the_source_is_still_producing(tmp_path: Path) -> None:
    out = tmp_path / "big"
    shards_seen_midway: list[int] = []

    def rows() -> Any:
        for i in range(4000):
            if i == 3500:  # earlier shards reach the disk: nothing waits for the end
                # (datasets may read the generator ahead by a batch, and shards are committed on
                # the writer's background thread: wait for them rather than race them)
                wait_until(lambda: len(list(out.glob("data-*.tar"))) >= 2, "two shards on disk")
                shards_seen_midway.append(len(list(out.glob("data-*.tar"))))
            yield {"x": np.full(8, i, np.int16), "label": f"r{i}"}

    features = datasets.Features(
        {"x": datasets.List(datasets.Value("int16"), length=8), "label": datasets.Value("string")}
    )
    stream = datasets.IterableDataset.from_generator(rows, features=features)
    written = atdata.from_hf(stream, str(out) + "/", maxcount=500, progress=False)
    assert shards_seen_midway and shards_seen_midway[0] >= 2
    assert len(written.shard_infos) == 8 and len(written) == 4000
    last = written[3999]
    assert last.x.dtype == np.int16 and last.x.shape == (8,) and last.label == "r3999"


def test_unsupported_features_are_refused_by_name(tmp_path: Path) -> None:
    nested = datasets.Dataset.from_dict({"meta": [{"a": 1}], "ok": [1]})
    with pytest.raises(atdata.SchemaError, match=r"column 'meta'.*remove or cast"):
        atdata.from_hf(nested, tmp_path / "x.tar")
    spaced = datasets.Dataset.from_dict({"has space": [1]})
    with pytest.raises(atdata.SchemaError, match="rename_column"):
        atdata.from_hf(spaced, tmp_path / "y.tar")
    with pytest.raises(atdata.InvalidArgumentError, match="DatasetDict"):
        atdata.from_hf(datasets.DatasetDict({"train": spaced}), tmp_path / "z.tar")
    assert not list(tmp_path.iterdir())  # nothing written


def test_schema_fields_without_hf_features_are_refused(tmp_path: Path) -> None:
    @atdata.packable
    class Mapped:
        d: dict[str, int]

    ds = atdata.write_samples([Mapped({"a": 1})], tmp_path / "m.tar")
    with pytest.raises(atdata.SchemaError, match=r"'d'.*no Hugging Face feature"):
        ds.to_hf(streaming=True)


def test_a_bad_row_names_its_row_and_column(tmp_path: Path) -> None:
    hf = datasets.Dataset.from_dict(
        {"img": [{"bytes": b"GIF89a....", "path": None}]},
        features=datasets.Features({"img": datasets.Image()}),
    )
    with pytest.raises(atdata.SchemaError, match=r"row 0, column 'img'.*not a JPEG, PNG or WebP"):
        atdata.from_hf(hf, tmp_path / "bad.tar")
    assert not os.path.exists(tmp_path / "bad.tar")
