"""Shards as written by ``write_samples``/``ShardWriter`` and as read from tars made by others."""

import hashlib
import io
import os
import struct
import tarfile
from pathlib import Path
from typing import Annotated, Any

import msgpack
import numpy as np
import pytest

import atdata
from atdata import AtdataWarning, DictSample, NDArray, SchemaError, Shape, ShardWriter
from atdata.codec import encode_array
from atdata.shards.offsets import OffsetIndex


@atdata.packable
class Rec:
    name: str
    idx: int
    emb: Annotated[NDArray[np.float32], Shape(8)]
    note: str | None = None


def _recs(n: int, start: int = 0) -> list[Rec]:
    return [
        Rec(f"r{i:04d}", i, np.arange(8, dtype=np.float32) * i, None if i % 3 else f"n{i}")
        for i in range(start, start + n)
    ]


def _files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def _load_index(shard: str) -> OffsetIndex:
    return OffsetIndex.from_bytes(Path(shard + ".idx").read_bytes(), shard + ".idx")


def _tar_members(path: str) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tf:
        return tf.getmembers()


# ------------------------------------------------------------------------------ rollover
def test_rollover_by_maxcount(tmp_path: Path) -> None:
    infos = atdata.write_samples(_recs(25), str(tmp_path / "s-%06d.tar"), maxcount=10).shard_infos
    assert [i.count for i in infos] == [10, 10, 5]
    assert [i.url for i in infos] == [str(tmp_path / f"s-{n:06d}.tar") for n in range(3)]
    assert _files(tmp_path) == [
        f"s-{n:06d}.tar{ext}" for n in range(3) for ext in ("", ".idx", ".manifest")
    ]
    for info in infos:
        assert len(_tar_members(info.url)) == info.count


def test_rollover_by_maxsize(tmp_path: Path) -> None:
    maxsize = 6 * 1024
    infos = atdata.write_samples(
        _recs(40), str(tmp_path / "s-%06d.tar"), maxcount=1000, maxsize=maxsize
    ).shard_infos
    assert len(infos) > 1
    assert sum(i.count for i in infos) == 40
    for info in infos:
        assert info.size == os.path.getsize(info.url)
        assert info.size <= maxsize
    # filling: a shard closes only when the next member would not fit
    member = 512 + 512  # each Rec body is well under one block
    assert all(i.size + member > maxsize for i in infos[:-1])


def test_a_sample_larger_than_maxsize_gets_a_shard_of_its_own(tmp_path: Path) -> None:
    samples = [DictSample(i=i, blob=bytes(10_000 if i == 1 else 10)) for i in range(3)]
    infos = atdata.write_samples(samples, str(tmp_path / "s-%06d.tar"), maxsize=4096).shard_infos
    assert [i.count for i in infos] == [1, 1, 1]
    assert infos[1].size > 4096
    keys = [k for i in infos for k in _load_index(i.url).keys]
    assert keys == ["00000000", "00000001", "00000002"]


def test_bad_writer_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ShardWriter(str(tmp_path / "s-%06d.tar"), maxcount=0)
    with pytest.raises(ValueError):
        ShardWriter(str(tmp_path / "s-%06d.tar"), maxsize=100)
    with pytest.raises(ValueError):
        ShardWriter(str(tmp_path / "s.tar"))
    assert _files(tmp_path) == []


# ------------------------------------------------------------------------------ keys
def test_default_keys_are_a_zero_padded_running_index_across_shards(tmp_path: Path) -> None:
    infos = atdata.write_samples(_recs(12), str(tmp_path / "s-%06d.tar"), maxcount=5).shard_infos
    names = [m.name for i in infos for m in _tar_members(i.url)]
    assert names == [f"{n:08d}.msgpack" for n in range(12)]


def test_key_field_names_the_members(tmp_path: Path) -> None:
    infos = atdata.write_samples(
        _recs(7), str(tmp_path / "s-%06d.tar"), maxcount=3, key_field="name"
    ).shard_infos
    names = [m.name for i in infos for m in _tar_members(i.url)]
    assert names == [f"r{n:04d}.msgpack" for n in range(7)]


def test_shard_writer_returns_keys_and_shards(tmp_path: Path) -> None:
    with ShardWriter(str(tmp_path / "w-%03d.tar"), maxcount=2, key_field="idx") as w:
        keys = [w.write(r) for r in _recs(5)]
    assert keys == ["0", "1", "2", "3", "4"]
    assert [s.count for s in w.shards] == [2, 2, 1]
    assert w.close() == w.shards
    with pytest.raises(ValueError):
        w.write(_recs(1)[0])


@pytest.mark.parametrize(
    "bad_key",
    ["a.b", "a/b", "", "with space", "x" * 100, "ünï", "../up", "tab\tkey"],
    ids=["dot", "slash", "empty", "space", "too-long", "non-ascii", "dotdot", "tab"],
)
def test_bad_key_field_values_are_rejected(tmp_path: Path, bad_key: str) -> None:
    samples = [DictSample(k="good", v=1), DictSample(k=bad_key, v=2)]
    with pytest.raises(SchemaError) as info:
        atdata.write_samples(samples, str(tmp_path / "s-%06d.tar"), key_field="k")
    assert info.value.path == "$.k"
    assert _files(tmp_path) == []  # the partial shard was discarded


def test_duplicate_keys_in_a_shard_are_rejected(tmp_path: Path) -> None:
    samples = [DictSample(k="same", v=1), DictSample(k="same", v=2)]
    with pytest.raises(SchemaError, match="duplicate"):
        atdata.write_samples(samples, str(tmp_path / "s-%06d.tar"), key_field="k")
    assert _files(tmp_path) == []
    # also for the first sample after a rollover
    samples = [DictSample(k=k, v=1) for k in ("a", "b", "c", "c")]
    with pytest.raises(SchemaError, match="duplicate") as info:
        atdata.write_samples(samples, str(tmp_path / "s-%06d.tar"), key_field="k", maxcount=2)
    assert info.value.path == "$.k"
    assert _files(tmp_path) == ["s-000000.tar", "s-000000.tar.idx", "s-000000.tar.manifest"]


def test_one_writer_holds_one_sample_type(tmp_path: Path) -> None:
    with pytest.raises(SchemaError):
        atdata.write_samples([_recs(1)[0], DictSample(a=1)], str(tmp_path / "s-%06d.tar"))
    assert _files(tmp_path) == []


# ------------------------------------------------------------------------------ reproducibility
def test_writing_twice_gives_byte_identical_shards(tmp_path: Path) -> None:
    outs = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        infos = atdata.write_samples(
            _recs(23), str(tmp_path / run / "s-%06d.tar"), maxcount=10, key_field="name"
        ).shard_infos
        outs.append(infos)
    a, b = outs
    assert [i.checksum.digest for i in a] == [i.checksum.digest for i in b]
    for name in _files(tmp_path / "a"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_tar_headers_carry_fixed_metadata(tmp_path: Path) -> None:
    infos = atdata.write_samples(_recs(3), str(tmp_path / "s-%06d.tar")).shard_infos
    for m in _tar_members(infos[0].url):
        assert m.isreg()
        assert (m.mtime, m.uid, m.gid, m.mode) == (0, 0, 0, 0o644)
        assert (m.uname, m.gname) == ("", "")


def test_sha256_and_size_match_the_file(tmp_path: Path) -> None:
    infos = atdata.write_samples(_recs(30), str(tmp_path / "s-%06d.tar"), maxcount=8).shard_infos
    for info in infos:
        data = Path(info.url).read_bytes()
        assert info.checksum.digest == hashlib.sha256(data).hexdigest()
        assert info.size == len(data)
        assert info.checksum.to_dict() == {"algorithm": "sha256", "digest": info.checksum.digest}
        assert len(data) % 512 == 0
        assert data[-1024:] == bytes(1024)  # end-of-archive blocks


# ------------------------------------------------------------------------------ atomicity
def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    atdata.write_samples(_recs(17), str(tmp_path / "s-%06d.tar"), maxcount=4)
    assert all(not n.startswith(".") and ".tmp" not in n for n in _files(tmp_path))
    assert len(_files(tmp_path)) == 3 * 5  # shard, offset index, manifest


def test_an_exception_inside_the_writer_leaves_no_partial_shard(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="boom"),
        ShardWriter(str(tmp_path / "s-%06d.tar"), maxcount=3) as w,
    ):
        for r in _recs(5):
            w.write(r)
        raise RuntimeError("boom")
    # shard 0 was finished (3 samples) before the failure; shard 1 (2 samples) never appears
    assert _files(tmp_path) == [
        "s-000000.tar",
        "s-000000.tar.idx",
    ]  # ShardWriter alone: no manifest
    assert [s.count for s in w.shards] == [3]
    assert (
        w.shards[0].checksum.digest
        == hashlib.sha256(Path(w.shards[0].url).read_bytes()).hexdigest()
    )
    ds = atdata.Dataset[Rec](str(tmp_path / "s-000000.tar"))
    assert [r.idx for r in ds.ordered()] == [0, 1, 2]


def test_a_failing_input_stream_leaves_no_partial_shard(tmp_path: Path) -> None:
    def samples() -> Any:
        yield from _recs(2)
        raise KeyError("source failed")

    with pytest.raises(KeyError):
        atdata.write_samples(samples(), str(tmp_path / "s-%06d.tar"))
    assert _files(tmp_path) == []


def test_a_bad_sample_midway_leaves_no_partial_shard(tmp_path: Path) -> None:
    samples = [*_recs(2), Rec("bad", 2, np.zeros(3, np.float32))]
    with pytest.raises(SchemaError) as info:
        atdata.write_samples(samples, str(tmp_path / "s-%06d.tar"))
    assert info.value.path == "$.emb"
    assert _files(tmp_path) == []


def test_rewriting_replaces_a_shard_whole(tmp_path: Path) -> None:
    pattern = str(tmp_path / "s-%06d.tar")
    atdata.write_samples(_recs(3), pattern)
    infos = atdata.write_samples(_recs(4, start=100), pattern).shard_infos
    ds = atdata.Dataset[Rec](infos[0].url)
    assert [r.idx for r in ds.ordered()] == [100, 101, 102, 103]
    assert len(ds) == 4


# ------------------------------------------------------------------------------ the sidecar
def test_offset_sidecar_matches_a_tarfile_scan(tmp_path: Path) -> None:
    samples = [DictSample(i=i, blob=bytes(range(i % 7)) * (i * 50)) for i in range(20)]
    infos = atdata.write_samples(samples, str(tmp_path / "s-%06d.tar"), maxcount=8).shard_infos
    for info in infos:
        idx = _load_index(info.url)
        members = _tar_members(info.url)
        assert idx.keys == [m.name.removesuffix(".msgpack") for m in members]
        assert idx.header_offsets.tolist() == [m.offset for m in members]
        assert idx.sizes.tolist() == [m.size for m in members]
        assert [idx.body_range(i)[0] for i in range(len(idx))] == [m.offset_data for m in members]
        assert idx.shard_size == info.size
        assert idx.sha256 == info.checksum.digest
        assert len(idx) == info.count


# ------------------------------------------------------------------------------ plain tarfile
def test_plain_tarfile_and_msgpack_decode_the_shard_as_documented(tmp_path: Path) -> None:
    recs = _recs(4)
    infos = atdata.write_samples(recs, str(tmp_path / "s-%06d.tar"), key_field="name").shard_infos
    with tarfile.open(infos[0].url) as tf:
        assert tf.getnames() == [f"{r.name}.msgpack" for r in recs]
        for r, m in zip(recs, tf.getmembers(), strict=True):
            raw = tf.extractfile(m)
            assert raw is not None
            body = msgpack.unpackb(raw.read(), raw=False)
            assert set(body) == {"name", "idx", "emb", "note"}
            assert (body["name"], body["idx"], body["note"]) == (r.name, r.idx, r.note)
            emb = body["emb"]
            assert isinstance(emb, bytes)
            # compact layout: L, dtype.str, ndim, int64 shape, raw C-order bytes
            dlen = emb[0]
            assert emb[1 : 1 + dlen] == b"<f4"
            ndim = emb[1 + dlen]
            shape = struct.unpack_from(f"<{ndim}q", emb, 2 + dlen)
            assert shape == (8,)
            data = emb[2 + dlen + 8 * ndim :]
            assert np.array_equal(np.frombuffer(data, "<f4"), r.emb)


def test_dict_samples_are_written_as_plain_msgpack_maps(tmp_path: Path) -> None:
    arr = np.arange(6, dtype=np.int16).reshape(2, 3)
    written = {
        "dict_sample": [DictSample(text="t", n=1, arr=arr, raw=b"\x01")],
        "plain_dict": [{"text": "t", "n": 1, "arr": arr, "raw": b"\x01"}],
    }
    for name, samples in written.items():
        infos = atdata.write_samples(samples, str(tmp_path / f"{name}-%06d.tar")).shard_infos
        with tarfile.open(infos[0].url) as tf:
            (member,) = tf.getmembers()
            raw = tf.extractfile(member)
            assert raw is not None
            body = msgpack.unpackb(raw.read())
        assert body == {"text": "t", "n": 1, "arr": encode_array(arr), "raw": b"\x01"}


def test_written_shards_read_back_in_order(tmp_path: Path) -> None:
    recs = _recs(9)
    atdata.write_samples(recs, str(tmp_path / "s-%06d.tar"), maxcount=4)
    back = list(atdata.Dataset[Rec](str(tmp_path / "s-*.tar")).ordered())
    assert [r.idx for r in back] == [r.idx for r in recs]
    assert all(
        np.array_equal(a.emb, b.emb) and a.note == b.note for a, b in zip(back, recs, strict=True)
    )


# ------------------------------------------------------------------------------ other writers' tars
def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_700_000_000
    tf.addfile(info, io.BytesIO(data))


LONG_KEY = "very_long_directory_name/" * 5 + "sample_with_an_extremely_long_key_" + "x" * 40
UNICODE_KEY = "ünïcødé_κλειδί"


def _foreign_tar(path: Path, fmt: int) -> list[str]:
    keys = ["plain", LONG_KEY, UNICODE_KEY]
    pax_headers = {"comment": "global"} if fmt == tarfile.PAX_FORMAT else None
    with tarfile.open(path, "w", format=fmt, pax_headers=pax_headers) as tf:
        dir_info = tarfile.TarInfo("somedir")
        dir_info.type = tarfile.DIRTYPE
        tf.addfile(dir_info)
        for i, key in enumerate(keys):
            body = {
                "name": key,
                "idx": i,
                "emb": encode_array(np.full(8, i, np.float32)),
                "note": None,
            }
            _add(tf, f"{key}.msgpack", msgpack.packb(body, use_bin_type=True))
            _add(tf, f"{key}.txt", f"caption {i}".encode())
    return keys


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax", "gnu"])
def test_pax_and_gnu_long_names_are_read(tmp_path: Path, fmt: int) -> None:
    path = tmp_path / "foreign.tar"
    keys = _foreign_tar(path, fmt)
    assert any(len(k) > 100 for k in keys)
    ds = atdata.Dataset[Rec](str(path))
    samples = list(ds.ordered())
    assert [s.name for s in samples] == keys
    assert [s.idx for s in samples] == [0, 1, 2]
    assert np.array_equal(samples[2].emb, np.full(8, 2, np.float32))
    with pytest.warns(AtdataWarning, match="no offset index"):
        assert len(ds) == 3
    assert ds.get(LONG_KEY).idx == 1
    assert ds.get(UNICODE_KEY).idx == 2
    assert ds[1].name == LONG_KEY
    batch = next(iter(ds.ordered(batch_size=3)))
    assert batch.keys == keys
    assert batch.emb.shape == (3, 8)


@pytest.mark.parametrize(
    "fmt",
    [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT],
    ids=["pax", "gnu", "ustar"],
)
def test_other_suffixes_are_ignored_by_typed_reads_and_kept_by_dict_reads(
    tmp_path: Path, fmt: int
) -> None:
    path = tmp_path / "foreign.tar"
    if fmt == tarfile.USTAR_FORMAT:
        # ustar splits long paths into prefix + name (no PAX or GNU records)
        keys = ["dir_" + "d" * 60 + "/inner_" + "e" * 40 + f"/k{i}" for i in range(2)]
        with tarfile.open(path, "w", format=fmt) as tf:
            for i, key in enumerate(keys):
                body = {"name": key, "idx": i, "emb": encode_array(np.zeros(8, np.float32))}
                _add(tf, f"{key}.msgpack", msgpack.packb(body, use_bin_type=True))
                _add(tf, f"{key}.txt", f"caption {i}".encode())
    else:
        keys = _foreign_tar(path, fmt)
    typed = list(atdata.Dataset[Rec](str(path)).ordered())
    assert [s.name for s in typed] == keys
    dicts = list(atdata.Dataset(str(path)).ordered())
    assert all(type(d) is DictSample for d in dicts)
    assert [d.name for d in dicts] == keys
    assert [d.txt for d in dicts] == [f"caption {i}" for i in range(len(keys))]
    assert all(isinstance(d.emb, bytes) for d in dicts)  # no guessing which bins are arrays
    assert set(dicts[0].keys()) >= {"name", "idx", "emb", "txt"}


def test_members_of_a_key_may_be_spread_with_other_keys_between(tmp_path: Path) -> None:
    # WebDataset groups consecutive members by key; a typed reader needs only .msgpack ones
    path = tmp_path / "mixed.tar"
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for i in range(3):
            _add(tf, f"k{i}.jpg", b"\xff\xd8")
            body = {"name": f"k{i}", "idx": i, "emb": encode_array(np.zeros(8, np.float32))}
            _add(tf, f"k{i}.msgpack", msgpack.packb(body, use_bin_type=True))
            _add(tf, f"k{i}.extra.json", b"{}")
    assert [s.idx for s in atdata.Dataset[Rec](str(path)).ordered()] == [0, 1, 2]
    dicts = list(atdata.Dataset(str(path)).ordered())
    assert [d.jpg for d in dicts] == [b"\xff\xd8"] * 3
    assert [d["extra.json"] for d in dicts] == [{}] * 3  # decoded by its last extension
