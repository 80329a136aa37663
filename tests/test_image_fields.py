"""Image fields: encoded bytes in msgpack samples, decoded lazily per sample and in parallel per
batch into one ``(B, H, W, C)`` uint8 array; schemas record them so types rebuild without a class.

Images are encoded by Pillow from smooth random content (real JPEG/PNG/WebP files).
"""

import io
import os
import pickle
from typing import Annotated

import numpy as np
import pytest

import atdata
from atdata import Image, ImageSpec, InvalidArgumentError, SchemaError
from atdata.media.pool import decode_column
from atdata.schema import Schema

PIL = pytest.importorskip("PIL.Image")


def smooth(seed: int, h: int = 40, w: int = 56, c: int = 3) -> np.ndarray:
    """Smooth noise (upsampled random blocks): compresses like a photo, not like white noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, c)).astype(np.float32)
    big = np.repeat(np.repeat(small, 8, 0), 8, 1)[:h, :w]
    k = np.ones(5) / 5
    for axis in (0, 1):
        big = np.apply_along_axis(lambda r: np.convolve(r, k, mode="same"), axis, big)
    return big.clip(0, 255).astype(np.uint8)


def pil_decode(data: bytes, mode: str = "RGB") -> np.ndarray:
    with PIL.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert(mode))
    return arr if arr.ndim == 3 else arr[:, :, None]


@atdata.packable
class Photo:
    image: Annotated[Image, ImageSpec(shape=(40, 56, 3), mode="RGB", format="jpeg")]
    label: int


@atdata.packable
class AnyPic:
    image: Image
    note: str = ""


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_encode_decode_matches_pillow(fmt: str) -> None:
    arr = smooth(1)
    img = Image.encode(arr, format=fmt, quality=92)
    assert img.format == fmt
    assert img.shape == (40, 56, 3)
    got = np.asarray(img)
    assert got.dtype == np.uint8 and got.shape == (40, 56, 3)
    assert np.array_equal(got, pil_decode(img.data))
    if fmt == "png":
        assert np.array_equal(got, arr)  # lossless
    else:
        assert np.abs(got.astype(int) - arr).mean() < 8


def test_quality_changes_the_bytes() -> None:
    arr = smooth(2)
    assert len(Image.encode(arr, quality=30)) < len(Image.encode(arr, quality=95))


def test_mode_conversion_on_decode() -> None:
    rgba = np.dstack([smooth(3), np.full((40, 56, 1), 200, np.uint8)])
    png = Image.encode(rgba, format="png")
    assert np.asarray(png).shape == (40, 56, 4)
    for mode, channels in (("RGB", 3), ("L", 1), ("RGBA", 4)):
        spec = ImageSpec(mode=mode)
        col = decode_column([png.data], spec, "$.x")
        assert col.shape == (1, 40, 56, channels)
        assert np.array_equal(col[0], pil_decode(png.data, mode))
    gray = Image.encode(smooth(4)[:, :, 0], format="png")
    assert np.asarray(gray).shape == (40, 56, 1)


def test_jpeg_cannot_hold_alpha_and_arrays_must_be_uint8() -> None:
    with pytest.raises(InvalidArgumentError, match="alpha"):
        Image.encode(np.zeros((4, 4, 4), np.uint8), format="jpeg")
    with pytest.raises(InvalidArgumentError, match="uint8"):
        Image.encode(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InvalidArgumentError, match="format"):
        Image.encode(np.zeros((4, 4, 3), np.uint8), format="gif")
    with pytest.raises(InvalidArgumentError, match="mode"):
        ImageSpec(shape=(4, 4, 3), mode="L")


def test_samples_hold_lazy_images_and_batches_are_stacked(tmp_path) -> None:
    arrays = [smooth(10 + i) for i in range(7)]
    samples = [Photo(image=Image.encode(a, quality=90), label=i) for i, a in enumerate(arrays)]
    samples[2] = Photo(image=arrays[2], label=2)  # arrays are encoded on write (field's format)
    ds = atdata.write_samples(samples, tmp_path / "p.tar")
    got = list(ds.ordered())
    assert all(isinstance(s.image, Image) and s.image.format == "jpeg" for s in got)
    assert got[0].image._array is None  # nothing decoded yet
    expected = [pil_decode(s.image.data) for s in got]
    assert np.array_equal(np.asarray(got[0].image), expected[0])
    batches = list(ds.ordered(batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert batches[0].image.shape == (3, 40, 56, 3) and batches[0].image.dtype == np.uint8
    stacked = np.concatenate([b.image for b in batches])
    assert np.array_equal(stacked, np.stack(expected))
    assert [lbl for b in batches for lbl in b.label] == list(range(7))
    # with a map stage, samples are built (lazy images) and decoded when the batch is collated
    mapped = list(ds.map(lambda s: s).ordered(batch_size=4))
    assert np.array_equal(np.concatenate([b.image for b in mapped]), np.stack(expected))


def test_images_of_different_sizes_give_a_list(tmp_path) -> None:
    samples = [AnyPic(image=Image.encode(smooth(i, 24 + 8 * (i % 2), 32))) for i in range(4)]
    ds = atdata.write_samples(samples, tmp_path / "r.tar")
    (batch,) = list(ds.ordered(batch_size=4))
    assert isinstance(batch.image, list)
    assert [a.shape for a in batch.image] == [(24, 32, 3), (32, 32, 3)] * 2
    for s, a in zip(samples, batch.image, strict=True):
        assert np.array_equal(a, pil_decode(s.image.data))


def test_declared_shape_and_format_are_enforced_on_write(tmp_path) -> None:
    with pytest.raises(SchemaError, match=r"\$\.image.*shape"):
        atdata.write_samples(
            [Photo(image=Image.encode(smooth(0, 32, 32)), label=0)], tmp_path / "a.tar"
        )
    with pytest.raises(SchemaError, match=r"\$\.image.*jpeg.*png"):
        atdata.write_samples(
            [Photo(image=Image.encode(smooth(0), format="png"), label=0)], tmp_path / "b.tar"
        )


def test_schema_records_image_fields_and_rebuilds_them(tmp_path) -> None:
    schema = Schema.from_type(Photo)
    record = schema.to_dict()
    (field,) = [f for f in record["fields"] if f["name"] == "image"]
    assert field["type"] == {
        "kind": "image",
        "image": {"shape": [40, 56, 3], "mode": "RGB", "format": "jpeg"},
    }
    rebuilt = Schema.from_dict(record)
    assert rebuilt == schema and rebuilt.identity == schema.identity
    assert rebuilt.field("image").type.describe() == "image[jpeg, RGB, (40, 56, 3)]"
    cls = rebuilt.to_sample_type()
    ds = atdata.write_samples([Photo(image=Image.encode(smooth(5)), label=5)], tmp_path / "s.tar")
    (sample,) = list(atdata.Dataset(str(tmp_path / "s.tar"), cls).ordered())
    assert np.asarray(sample.image).shape == (40, 56, 3) and sample.label == 5
    (batch,) = list(atdata.Dataset(str(tmp_path / "s.tar"), cls).ordered(batch_size=2))
    assert batch.image.shape == (1, 40, 56, 3)
    del ds


def test_an_index_entry_loads_with_image_fields_and_no_class(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    ds = atdata.write_samples(
        [Photo(image=Image.encode(smooth(i)), label=i) for i in range(3)], tmp_path / "i.tar"
    )
    atdata.Index().insert(ds, name="photos")
    loaded = atdata.load_dataset("@local/photos", split="train")
    assert loaded.sample_type is not Photo
    (batch,) = list(loaded.ordered(batch_size=3))
    assert batch.image.shape == (3, 40, 56, 3) and list(batch.label) == [0, 1, 2]
    first = next(iter(loaded.ordered()))
    assert isinstance(first.image, Image)


def test_bad_image_specs_in_records_are_schema_errors() -> None:
    bad = {
        "name": "X",
        "fields": [{"name": "i", "type": {"kind": "image", "image": {"mode": "P"}}}],
    }
    with pytest.raises(SchemaError, match=r"\$\.i"):
        Schema.from_dict(bad)


def test_images_pickle_without_their_pixels() -> None:
    img = Image.encode(smooth(6))
    np.asarray(img)
    back = pickle.loads(pickle.dumps(img))
    assert back == img and back._array is None
    assert np.array_equal(np.asarray(back), np.asarray(img))


def test_thread_count_does_not_change_the_pixels(monkeypatch) -> None:
    datas = [Image.encode(smooth(20 + i)).data for i in range(9)]
    spec = ImageSpec(mode="RGB")
    one = decode_column(datas, spec, "$.x", threads=1)
    three = decode_column(datas, spec, "$.x", threads=3)
    assert np.array_equal(one, three)
    monkeypatch.setenv("ATDATA_DECODE_THREADS", "nope")
    with pytest.raises(InvalidArgumentError, match="ATDATA_DECODE_THREADS"):
        decode_column(datas, spec, "$.x")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_decoding_works_in_a_forked_child() -> None:
    datas = [Image.encode(smooth(30 + i)).data for i in range(6)]
    spec = ImageSpec(mode="RGB")
    parent = decode_column(datas, spec, "$.x", threads=2)  # the parent's pool now has threads
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the parent's threads are gone; the pool must be rebuilt
        try:
            child = decode_column(datas, spec, "$.x", threads=2)
            os.write(write, b"ok" if np.array_equal(child, parent) else b"no")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 2) == b"ok" and status == 0


def test_schema_stubs_and_generated_samples_know_image_fields(tmp_path) -> None:
    from atdata.samplegen import make_samples
    from atdata.stubgen import schema_stub

    source = schema_stub(Schema.from_type(Photo))
    assert (
        "image: Annotated[atdata.Image, atdata.ImageSpec(shape=(40, 56, 3), mode='RGB', "
        "format='jpeg')]" in source
    )
    assert "image: atdata.Image" in schema_stub(Schema.from_type(AnyPic))
    samples = make_samples(Photo, 3)
    assert all(s.image.format == "jpeg" and s.image.shape == (40, 56, 3) for s in samples)
    ds = atdata.write_samples(samples, tmp_path / "g.tar")
    (batch,) = list(ds.ordered(batch_size=3))
    assert batch.image.shape == (3, 40, 56, 3)


def test_the_readme_images_section_runs_as_written(tmp_path, monkeypatch) -> None:
    from readme_blocks import python_blocks

    block = python_blocks("## Encoded images")[0]
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {"__name__": "readme_images"}
    exec(compile(block, "README.md", "exec"), scope)
    ds = scope["ds"]
    assert np.asarray(ds[0].image).shape == (64, 64, 3)
    assert next(iter(ds.ordered(batch_size=32))).image.shape == (32, 64, 64, 3)
