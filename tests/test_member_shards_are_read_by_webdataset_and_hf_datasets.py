"""Shards atdata writes in member layout are ordinary WebDataset shards: ``webdataset`` decodes
them with its own decoders (``.decode("rgb8")`` gives the same pixels) and HF ``datasets``
loads them with its ``webdataset`` builder, offline, from local files; the offset index and
checksums are kept."""

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import webdataset as wds
from numpy.typing import NDArray
from PIL import Image

import atdata
from atdata import Dataset, DictSample
from atdata.shards.offsets import OFFSETS_SUFFIX


@atdata.packable
class Photo:
    image: bytes = atdata.member("jpg", "png")
    caption: str = atdata.member("txt")
    label: int = atdata.member("cls")
    meta: dict[str, Any] = atdata.member("json")
    embedding: NDArray[np.float32] = atdata.member("npy")


def _pixels(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)


def _encoded(i: int) -> bytes:
    out = io.BytesIO()
    if i % 3 == 2:
        Image.fromarray(_pixels(i)).save(out, "PNG")
    else:
        Image.fromarray(_pixels(i)).save(out, "JPEG", quality=90)
    return out.getvalue()


def _photo(i: int) -> Photo:
    return Photo(
        image=_encoded(i),
        caption=f"caption {i}",
        label=i % 4,
        meta={"i": i, "source": "test"},
        embedding=np.linspace(0, 1, 5, dtype=np.float32) * i,
    )


def _decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> atdata.writing.WrittenDataset[Photo]:
    root = tmp_path_factory.mktemp("members")
    return atdata.write_samples([_photo(i) for i in range(9)], str(root / "p-%06d.tar"), maxcount=4)


def test_members_keep_checksums_and_a_group_offset_index(written: Any) -> None:
    assert [s.count for s in written.shard_infos] == [4, 4, 1]
    for info in written.shard_infos:
        data = Path(info.url).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info.checksum.digest and len(data) == info.size
        side = Path(info.url + OFFSETS_SUFFIX).read_bytes()
        assert hashlib.sha256(side).hexdigest() == info.sidecar_checksum.digest
        raw = msgpack.unpackb(side)
        assert raw["version"] == 2 and raw["count"] == info.count
    checked = Dataset[Photo](
        written.urls, checksums={s.url: s.checksum.digest for s in written.shard_infos}
    )
    assert len(checked) == 9 and checked[8].caption == "caption 8"
    names = [m.name for m in tarfile.open(written.urls[0]).getmembers()][:5]
    assert names == [
        "00000000.jpg",
        "00000000.txt",
        "00000000.cls",
        "00000000.json",
        "00000000.npy",
    ]


def test_webdataset_decodes_the_same_content(written: Any) -> None:
    got = list(wds.WebDataset(written.urls, shardshuffle=False).decode("rgb8"))
    assert [s["__key__"] for s in got] == [f"{i:08d}" for i in range(9)]
    for i, s in enumerate(got):
        ext = "png" if i % 3 == 2 else "jpg"  # the extension follows the image's format
        assert ext in s
        np.testing.assert_array_equal(s[ext], _decoded(_encoded(i)))
        if ext == "png":  # lossless: the very pixels written
            np.testing.assert_array_equal(s[ext], _pixels(i))
        assert s["txt"] == f"caption {i}" and s["cls"] == i % 4
        assert s["json"] == {"i": i, "source": "test"}
        np.testing.assert_array_equal(s["npy"], np.linspace(0, 1, 5, dtype=np.float32) * i)


def test_hf_datasets_loads_them_offline(
    written: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # HF's builder wants every sample to have the same members: the JPEG ones here
    jpegs = atdata.write_samples(
        [_photo(i) for i in range(6) if i % 3 != 2], str(tmp_path / "j-%06d.tar"), maxcount=3
    )
    loaded = datasets.load_dataset(
        "webdataset",
        data_files={"train": jpegs.urls},
        split="train",
        cache_dir=str(tmp_path / "cache"),
    )
    assert len(loaded) == 4
    for row, i in zip(loaded, [0, 1, 3, 4], strict=True):
        assert row["__key__"] == f"{[0, 1, 3, 4].index(i):08d}"
        np.testing.assert_array_equal(np.asarray(row["jpg"].convert("RGB")), _decoded(_encoded(i)))
        assert row["txt"] == f"caption {i}" and row["cls"] == i % 4
        assert row["json"] == {"i": i, "source": "test"}
        np.testing.assert_allclose(row["npy"], np.linspace(0, 1, 5, dtype=np.float32) * i)


def test_dicts_write_as_members_and_read_back(tmp_path: Path) -> None:
    rows = [
        {"jpg": _encoded(i), "cls": i, "txt": f"t{i}", "json": {"k": [i]}, "npy": np.eye(2) * i}
        for i in range(3)
    ]
    ds = atdata.write_samples(rows, str(tmp_path / "d.tar"), layout="members")
    back = list(ds.ordered())
    assert all(isinstance(s, DictSample) for s in back)
    assert [s["cls"] for s in back] == [0, 1, 2] and back[2]["json"] == {"k": [2]}
    np.testing.assert_array_equal(ds[1]["npy"], np.eye(2))
    theirs = list(wds.WebDataset(ds.urls, shardshuffle=False).decode("rgb8"))
    assert [s["cls"] for s in theirs] == [0, 1, 2] and theirs[1]["txt"] == "t1"
    np.testing.assert_array_equal(theirs[2]["jpg"], _decoded(_encoded(2)))


def test_a_msgpack_type_cannot_be_forced_into_member_layout(tmp_path: Path) -> None:
    @atdata.packable
    class Plain:
        x: int

    with pytest.raises(atdata.InvalidArgumentError, match=r"atdata\.member"):
        atdata.write_samples([Plain(1)], str(tmp_path / "x.tar"), layout="members")
    with pytest.raises(atdata.InvalidArgumentError, match="member layout"):
        atdata.write_samples([_photo(0)], str(tmp_path / "y.tar"), layout="msgpack")
