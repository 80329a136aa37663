"""Image fields in member layout: ``.jpg``/``.png`` members of real webdataset shards typed as
:class:`atdata.Image`, our member-layout shards decoded by webdataset to the same pixels, and a
member whose extension lies about its bytes named with its key and shard."""

import io
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest

import atdata
from atdata import AtdataWarning, Dataset, Image, ImageSpec, SchemaError

PIL = pytest.importorskip("PIL.Image")
pytestmark = pytest.mark.filterwarnings("ignore:.*has no offset index:atdata.AtdataWarning")
wds = pytest.importorskip("webdataset")


def smooth(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8, w // 8, 3)).astype(np.uint8)
    return np.repeat(np.repeat(small, 8, 0), 8, 1)


def encoded(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    PIL.fromarray(arr).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


@atdata.packable
class Photo:
    image: Annotated[Image, ImageSpec(shape=(48, 64, 3), mode="RGB")] = atdata.member("jpg", "png")
    label: int = atdata.member("cls")
    caption: str = atdata.member("txt")


def webdataset_shard(
    path: Path, n: int = 6, bad: dict[int, tuple[str, bytes]] | None = None
) -> str:
    with wds.TarWriter(str(path)) as sink:
        for i in range(n):
            ext, data = (bad or {}).get(i, ("jpg" if i % 2 else "png", b""))
            if not data:
                data = encoded(smooth(i), "JPEG" if ext == "jpg" else "PNG")
            sink.write({"__key__": f"s{i:04d}", ext: data, "cls": i, "txt": f"photo {i}"})
    return str(path)


def test_webdataset_shards_are_typed_with_images(tmp_path) -> None:
    url = webdataset_shard(tmp_path / "w.tar")
    ds = Dataset(url, Photo)
    samples = list(ds.ordered())
    assert [s.label for s in samples] == list(range(6))
    assert [s.image.format for s in samples] == ["png", "jpeg"] * 3
    assert np.array_equal(np.asarray(samples[0].image), smooth(0))  # png: lossless
    assert np.asarray(ds[3].image).shape == (48, 64, 3) and ds.get("s0003").caption == "photo 3"
    batches = list(ds.ordered(batch_size=4))
    assert batches[0].image.shape == (4, 48, 64, 3) and batches[0].image.dtype == np.uint8
    pipe = wds.WebDataset(url, shardshuffle=False).decode("rgb8").to_tuple("jpg;png", "cls")
    theirs = np.stack([img for img, _ in pipe])
    assert np.array_equal(np.concatenate([b.image for b in batches]), theirs)


def test_our_member_shards_decode_to_the_same_pixels_in_webdataset(tmp_path) -> None:
    arrays = [smooth(10 + i) for i in range(5)]
    samples = [
        Photo(image=Image.encode(a, quality=85), label=i, caption=f"c{i}")
        for i, a in enumerate(arrays)
    ]
    samples[1] = Photo(image=Image.encode(arrays[1], format="png"), label=1, caption="c1")
    ds = atdata.write_samples(samples, tmp_path / "ours.tar")
    url = ds.shard_infos[0].url
    pipe = wds.WebDataset(url, shardshuffle=False).decode("rgb8")
    theirs = list(pipe)
    assert [sorted(k for k in d if not k.startswith("__")) for d in theirs][:2] == [
        ["cls", "jpg", "txt"],
        ["cls", "png", "txt"],
    ]
    ours = [np.asarray(s.image) for s in Dataset(url, Photo).ordered()]
    for d, mine in zip(theirs, ours, strict=True):
        assert np.array_equal(d.get("jpg", d.get("png")), mine)


def test_a_member_whose_extension_lies_is_named(tmp_path) -> None:
    png_as_jpg = encoded(smooth(2), "PNG")
    url = webdataset_shard(tmp_path / "bad.tar", bad={2: ("jpg", png_as_jpg)})
    with pytest.raises(SchemaError) as info:
        list(Dataset(url, Photo).ordered(batch_size=6))
    text = str(info.value)
    assert "$.image" in text and "holds png data, not jpeg" in text
    assert "s0002" in text and "bad.tar" in text
    got = list(Dataset(url, Photo, on_error="skip").ordered(batch_size=6))
    assert [lbl for b in got for lbl in b.label] == [0, 1, 3, 4, 5]
    with pytest.warns(AtdataWarning, match="s0002"):
        assert len(list(Dataset(url, Photo, on_error="warn").ordered())) == 5


def test_a_truncated_jpeg_member_is_skipped_in_batches(tmp_path) -> None:
    data = encoded(smooth(3), "JPEG")
    url = webdataset_shard(tmp_path / "cut.tar", bad={3: ("jpg", data[: len(data) // 2])})
    with pytest.raises(SchemaError, match=r"(?i)truncated.*s0003"):
        list(Dataset(url, Photo).ordered(batch_size=3))
    got = list(Dataset(url, Photo, on_error="skip").ordered(batch_size=3))
    assert [lbl for b in got for lbl in b.label] == [0, 1, 2, 4, 5]


@pytest.mark.parametrize("layout", ["msgpack", "members"])
def test_schema_free_samples_store_images_as_their_bytes(tmp_path, layout: str) -> None:
    img = Image.encode(smooth(7))
    ds = atdata.write_samples([{"jpg": img, "cls": 4}], tmp_path / "d.tar", layout=layout)
    (sample,) = list(ds.ordered())
    assert sample["jpg"] == img.data and sample["cls"] == 4
