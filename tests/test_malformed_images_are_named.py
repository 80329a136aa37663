"""Malformed images (truncated JPEG, bytes of another format than declared, a 60,000 x 60,000
PNG header, more pixels than the cap) end in a SchemaError naming the field, the sample key and
the shard; ``on_error`` skips or warns instead; nothing is allocated for a huge header.

Every image is encoded by Pillow; the malformed ones are real files cut short or with a patched
IHDR (its CRC recomputed, so only the size is hostile).
"""

import io
import os
import struct
import subprocess
import sys
import textwrap
import warnings
import zlib
from typing import Annotated

import numpy as np
import pytest

import atdata
from atdata import AtdataWarning, Dataset, Image, ImageSpec, SchemaError

PIL = pytest.importorskip("PIL.Image")


def smooth(seed: int, h: int = 32, w: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8, w // 8, 3)).astype(np.uint8)
    return np.repeat(np.repeat(small, 8, 0), 8, 1)


def png_with_size(width: int, height: int) -> bytes:
    """A real Pillow PNG whose IHDR is rewritten to ``width`` x ``height`` (valid CRC)."""
    buf = io.BytesIO()
    PIL.fromarray(smooth(0)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@atdata.packable
class Raw:
    """Writes any bytes under the field name the image types read."""

    image: bytes
    label: int


@atdata.packable
class Pic:
    image: Image
    label: int


@atdata.packable
class JpegPic:
    image: Annotated[Image, ImageSpec(format="jpeg")]
    label: int


GOOD = Image.encode(smooth(1)).data


def shard_with(tmp_path, bad: bytes, at: int = 2, n: int = 5) -> str:
    rows = [Raw(image=bad if i == at else GOOD, label=i) for i in range(n)]
    ds = atdata.write_samples(rows, tmp_path / "s.tar")
    return ds.shard_infos[0].url


def truncated_jpeg() -> bytes:
    data = Image.encode(smooth(2, 64, 64), quality=90).data
    return data[: len(data) * 2 // 3]


CASES = {
    "truncated": (truncated_jpeg, "truncated"),
    "huge_header": (lambda: png_with_size(60_000, 60_000), "pixels"),
    "not_an_image": (lambda: b"GIF89a" + b"\0" * 64, "not a JPEG, PNG or WebP"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_batches_name_the_key_and_shard(tmp_path, case: str) -> None:
    make, words = CASES[case]
    url = shard_with(tmp_path, make())
    ds = Dataset(url, Pic)
    with pytest.raises(SchemaError) as info:
        list(ds.ordered(batch_size=5))
    text = str(info.value)
    assert "$.image" in text and "'00000002'" in text and "s.tar" in text and words in text
    got = list(ds.with_on_error("skip").ordered(batch_size=5))
    assert [lbl for b in got for lbl in b.label] == [0, 1, 3, 4]
    assert got[0].image.shape == (4, 32, 32, 3)
    with pytest.warns(AtdataWarning, match="00000002"):
        list(ds.with_on_error("warn").ordered(batch_size=5))
    # a map stage: samples are built first, decoded when collated; the policy still applies
    staged = ds.with_on_error("skip").map(lambda s: s)
    assert [lbl for b in staged.ordered(batch_size=5) for lbl in b.label] == [0, 1, 3, 4]
    with pytest.raises(SchemaError, match="00000002"):
        list(ds.map(lambda s: s).ordered(batch_size=5))


@pytest.mark.parametrize("case", ["huge_header", "not_an_image"])
def test_bad_headers_are_refused_per_sample(tmp_path, case: str) -> None:
    make, words = CASES[case]
    url = shard_with(tmp_path, make())
    with pytest.raises(SchemaError, match=rf"\$\.image.*{words}.*'00000002'"):
        list(Dataset(url, Pic).ordered())
    got = list(Dataset(url, Pic, on_error="skip").ordered())
    assert [s.label for s in got] == [0, 1, 3, 4]


def test_truncated_pixels_fail_when_used_naming_the_field(tmp_path) -> None:
    url = shard_with(tmp_path, truncated_jpeg())
    samples = list(Dataset(url, Pic).ordered())  # the header is fine: the sample is yielded
    assert len(samples) == 5
    with pytest.raises(SchemaError, match="truncated"):
        np.asarray(samples[2].image)
    assert np.asarray(samples[1].image).shape == (32, 32, 3)


def test_bytes_of_another_format_than_declared(tmp_path) -> None:
    png = Image.encode(smooth(3), format="png").data
    url = shard_with(tmp_path, png)
    with pytest.raises(SchemaError, match=r"\$\.image: expected a jpeg image, got png.*00000002"):
        list(Dataset(url, JpegPic).ordered(batch_size=5))
    with pytest.raises(SchemaError, match=r"expected a jpeg image, got png.*00000002"):
        list(Dataset(url, JpegPic).ordered())
    assert len(list(Dataset(url, JpegPic, on_error="skip").ordered())) == 4
    with pytest.raises(SchemaError, match="declared jpeg but the bytes are png"):
        Image(png, "jpg")


def test_pixel_cap_from_the_environment_and_per_field(tmp_path, monkeypatch) -> None:
    big = Image.encode(smooth(4, 1200, 1000), format="png")  # 1.2 megapixels, real pixels

    @atdata.packable
    class Roomy:
        image: Annotated[Image, ImageSpec(max_pixels=2_000_000)]
        label: int

    pixels = np.asarray(big)
    url = shard_with(tmp_path, big.data, at=0, n=1)
    monkeypatch.setenv("ATDATA_MAX_IMAGE_PIXELS", "1000000")
    with pytest.raises(SchemaError, match=r"1000x1200 pixels is over the cap of 1000000"):
        list(Dataset(url, Pic).ordered(batch_size=1))
    (batch,) = list(Dataset(url, Roomy).ordered(batch_size=1))  # the field's own cap
    assert batch.image.shape == (1, 1200, 1000, 3)
    assert np.array_equal(batch.image[0], pixels)
    monkeypatch.setenv("ATDATA_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(atdata.InvalidArgumentError, match="ATDATA_MAX_IMAGE_PIXELS"):
        list(Dataset(url, Pic).ordered(batch_size=1))


def test_writing_refuses_what_reading_would(tmp_path) -> None:
    with pytest.raises(SchemaError, match=r"\$\.image.*pixels"):
        atdata.write_samples(
            [Pic(image=Image(png_with_size(60_000, 60_000)), label=0)], tmp_path / "w.tar"
        )
    with pytest.raises(SchemaError, match="not a JPEG, PNG or WebP"):
        Image(b"\x00\x01" * 20)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS semantics")
def test_a_huge_header_allocates_nothing(tmp_path) -> None:
    """Read under a 1 GiB address-space limit: a 60,000 x 60,000 image (10.8 GB of pixels) is
    refused from its header, in the sample path and the batch path alike."""
    url = shard_with(tmp_path, png_with_size(60_000, 60_000), at=0, n=2)
    limit = 1 << 30
    code = f"""
    import resource, warnings
    resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
    warnings.simplefilter("ignore")
    import atdata
    from atdata import Image, SchemaError

    @atdata.packable
    class Pic:
        image: Image
        label: int

    ds = atdata.Dataset({url!r}, Pic, on_error="skip")
    print(len(list(ds.ordered())), sum(len(b) for b in ds.ordered(batch_size=2)))
    """
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]


def test_no_warning_leaks_from_pillow_on_a_capped_header(tmp_path) -> None:
    url = shard_with(tmp_path, png_with_size(9_000, 9_000), at=0, n=1)  # 81 Mpx > 64 Mpx cap
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SchemaError, match="9000x9000 pixels is over the cap of 64000000"):
            list(Dataset(url, Pic).ordered(batch_size=1))
