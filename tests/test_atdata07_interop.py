"""Interop with atdata 0.7.0b1 shards (docs/format.md §1), both directions.

- ``tests/fixtures/atdata07/``: two shards written by atdata 0.7's own ``write_samples`` (random
  UUID keys, PAX headers, float mtimes) and ``expected.json``; ``make_fixture.py`` made them.
- Shards written by our writer are parsed here by hand (``tarfile`` + ``msgpack`` + the compact
  array layout), so the on-disk format is pinned independently of our reader.
- When ``benchmarks/.venv07`` exists (``python -m benchmarks.venv07``), atdata 0.7 itself reads
  a shard we wrote.
"""

import json
import struct
import tarfile
import textwrap
import warnings
from pathlib import Path
from typing import Annotated

import msgpack
import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata07 import VENV07_PYTHON, run_under_07
from fixtures.atdata07.interop_values import values_for

FIXTURES = Path(__file__).parent / "fixtures" / "atdata07"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
SHARDS = [str(FIXTURES / name) for name in EXPECTED["shards"]]
BRACE = str(FIXTURES / "atdata07-{000000..000001}.tar")


@atdata.packable
class InteropSample:
    name: str
    idx: int
    score: float
    emb: Annotated[NDArray[np.float32], atdata.Shape(4, 8)]
    mask: Annotated[NDArray[np.uint8], atdata.Shape(3, 5)]
    note: str | None = None
    extra: NDArray[np.int64] | None = None


def _from_json(v):
    if isinstance(v, dict) and "dtype" in v:
        return np.array(v["data"], dtype=np.dtype(v["dtype"])).reshape(v["shape"])
    return v


def expected_samples() -> list[dict]:
    return [{k: _from_json(v) for k, v in s.items()} for s in EXPECTED["samples"]]


def assert_sample_equal(got: dict, want: dict) -> None:
    for name, value in want.items():
        if name == "key":
            continue
        actual = got[name]
        if isinstance(value, np.ndarray):
            assert isinstance(actual, np.ndarray), (name, type(actual))
            assert actual.dtype == value.dtype, (name, actual.dtype)
            assert actual.shape == value.shape, (name, actual.shape)
            np.testing.assert_array_equal(actual, value, err_msg=name)
        else:
            assert type(actual) is type(value), (name, type(actual), type(value))
            assert actual == value, (name, actual, value)


# --------------------------------------------------------------------------- the fixture itself
def test_fixture_is_what_make_fixture_describes():
    samples = expected_samples()
    assert len(samples) == 8 and EXPECTED["per_shard"] == 4
    for i, s in enumerate(samples):
        assert_sample_equal(s, values_for(i))
    with tarfile.open(SHARDS[0]) as tf:
        members = tf.getmembers()
    assert [m.name for m in members] == [f"{s['key']}.msgpack" for s in EXPECTED["samples"][:4]]
    assert all(m.pax_headers for m in members), "atdata 0.7 writes PAX headers (float mtime)"


# --------------------------------------------------------------------------- ours reads 0.7
@pytest.mark.parametrize("url", [BRACE, SHARDS], ids=["brace", "list"])
def test_typed_reader_reads_atdata07_shards(url):
    got = list(atdata.Dataset[InteropSample](url).ordered())
    want = expected_samples()
    assert len(got) == len(want)
    for sample, expected in zip(got, want, strict=True):
        assert type(sample) is InteropSample
        assert_sample_equal(vars(sample), expected)


def test_batched_reader_reads_atdata07_shards():
    want = expected_samples()
    batches = list(atdata.Dataset[InteropSample](BRACE).ordered(batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 2]
    assert [k for b in batches for k in b.keys] == [s["key"] for s in want]
    emb = np.concatenate([b.emb for b in batches])
    mask = np.concatenate([b.mask for b in batches])
    assert emb.shape == (8, 4, 8) and emb.dtype == np.float32
    assert mask.shape == (8, 3, 5) and mask.dtype == np.uint8
    np.testing.assert_array_equal(emb, np.stack([s["emb"] for s in want]))
    np.testing.assert_array_equal(mask, np.stack([s["mask"] for s in want]))
    assert [x for b in batches for x in b.idx] == list(range(8))
    assert [x for b in batches for x in b.name] == [s["name"] for s in want]
    assert [x for b in batches for x in b.score] == [s["score"] for s in want]
    assert [x for b in batches for x in b.note] == [s["note"] for s in want]


def test_shuffled_reader_delivers_every_atdata07_sample_once():
    got = [s.idx for s in atdata.Dataset[InteropSample](BRACE).shuffled(seed=3)]
    assert sorted(got) == list(range(8))


def test_random_access_by_key_on_atdata07_shards(tmp_path, monkeypatch):
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path))  # an empty cache of scanned indexes
    ds = atdata.Dataset[InteropSample](BRACE)
    with pytest.warns(atdata.AtdataWarning, match="no offset index"):  # 0.7 writes no sidecar
        assert len(ds) == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the scan was cached: no second scan
        assert len(atdata.Dataset[InteropSample](BRACE)) == 8
    for i, expected in enumerate(expected_samples()):
        assert_sample_equal(vars(ds.get(expected["key"])), expected)
        assert_sample_equal(vars(ds[i]), expected)


def test_dict_sample_reads_atdata07_shards_without_guessing_arrays():
    got = list(atdata.Dataset[atdata.DictSample](BRACE).ordered())
    want = expected_samples()
    assert len(got) == len(want)
    for d, expected in zip(got, want, strict=True):
        assert isinstance(d, atdata.DictSample)
        assert set(d.keys()) == {"name", "idx", "score", "emb", "mask", "note", "extra"}
        assert d.name == expected["name"] and d["idx"] == expected["idx"]
        assert d.score == expected["score"] and d.note == expected["note"]
        # no schema: array fields stay raw bytes in the compact layout
        for field in ("emb", "mask"):
            raw = d[field]
            assert isinstance(raw, bytes | memoryview), type(raw)
            np.testing.assert_array_equal(parse_compact(bytes(raw)), expected[field])
        if expected["extra"] is None:
            assert d.extra is None
        else:
            np.testing.assert_array_equal(parse_compact(bytes(d.extra)), expected["extra"])


# --------------------------------------------------------------------------- our bytes, by hand
def parse_compact(buf: bytes) -> np.ndarray:
    """docs/format.md §1 compact array layout, parsed independently of atdata."""
    dlen = buf[0]
    dtype = np.dtype(buf[1 : 1 + dlen].decode("ascii"))
    ndim = buf[1 + dlen]
    shape = struct.unpack_from(f"<{ndim}q", buf, 2 + dlen)
    data = buf[2 + dlen + 8 * ndim :]
    assert len(data) == int(np.prod(shape)) * dtype.itemsize
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _write_ours(tmp_path: Path, count: int = 8, **kwargs) -> list:
    samples = [InteropSample(**values_for(i)) for i in range(count)]
    return atdata.write_samples(
        samples, str(tmp_path / "ours-%06d.tar"), maxcount=4, **kwargs
    ).shard_infos


def test_our_shards_are_plain_tar_and_msgpack(tmp_path):
    infos = _write_ours(tmp_path)
    assert [Path(str(i.url)).name for i in infos] == ["ours-000000.tar", "ours-000001.tar"]
    seen = []
    for info in infos:
        raw = Path(str(info.url)).read_bytes()
        assert len(raw) % 512 == 0 and raw[-1024:] == bytes(1024)  # end-of-archive blocks
        assert raw[257:263] == b"ustar\x00"  # POSIX ustar header
        assert len(raw) == info.size
        with tarfile.open(str(info.url), mode="r:") as tf:  # uncompressed tar, nothing else
            for m in tf.getmembers():
                assert m.isreg() and not m.pax_headers
                key, _, suffix = m.name.partition(".")
                assert suffix == "msgpack" and "/" not in m.name
                body = tf.extractfile(m).read()
                data = msgpack.unpackb(body, raw=False)
                assert isinstance(data, dict)
                seen.append((key, data, m.mtime))
    assert [k for k, _, _ in seen] == [
        f"{i:08d}" for i in range(8)
    ]  # deterministic zero-padded keys
    assert len({mtime for _, _, mtime in seen}) == 1  # fixed mtime
    for i, (_, data, _) in enumerate(seen):
        want = values_for(i)
        assert set(data) == set(want)
        for name, value in want.items():
            if isinstance(value, np.ndarray):
                assert isinstance(data[name], bytes)  # msgpack bin
                got = parse_compact(data[name])
                assert got.dtype == value.dtype and got.shape == value.shape
                np.testing.assert_array_equal(got, value)
            else:
                assert data[name] == value and type(data[name]) is type(value)


def test_our_shards_are_byte_identical_when_rewritten(tmp_path):
    first = _write_ours(tmp_path / "a")
    second = _write_ours(tmp_path / "b")
    assert [i.checksum.digest for i in first] == [i.checksum.digest for i in second]
    for a, b in zip(first, second, strict=True):
        assert Path(str(a.url)).read_bytes() == Path(str(b.url)).read_bytes()


def test_our_shards_with_a_key_field(tmp_path):
    infos = _write_ours(tmp_path, key_field="idx")
    with tarfile.open(str(infos[0].url)) as tf:
        assert tf.getnames() == [f"{i}.msgpack" for i in range(4)]
    ds = atdata.Dataset[InteropSample](str(tmp_path / "ours-{000000..000001}.tar"))
    assert_sample_equal(vars(ds.get("6")), values_for(6))


# --------------------------------------------------------------------------- 0.7 reads ours
@pytest.mark.skipif(
    not VENV07_PYTHON.exists(), reason="benchmarks/.venv07 absent (python -m benchmarks.venv07)"
)
def test_atdata07_reads_our_shards(tmp_path):
    _write_ours(tmp_path)
    script = textwrap.dedent(
        """
        import json, sys
        import atdata
        from numpy.typing import NDArray

        @atdata.packable
        class InteropSample:
            name: str
            idx: int
            score: float
            emb: NDArray
            mask: NDArray
            note: str | None = None
            extra: NDArray | None = None

        def enc(v):
            if hasattr(v, "dtype"):
                return {"dtype": v.dtype.str, "shape": list(v.shape), "data": v.ravel().tolist()}
            return v

        ds = atdata.Dataset[InteropSample](sys.argv[1])
        print(json.dumps([{k: enc(v) for k, v in vars(s).items()} for s in ds.ordered()]))
        """
    )
    url = str(tmp_path / "ours-{000000..000001}.tar")
    proc = run_under_07(script, url)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(got) == 8
    for i, s in enumerate(got):
        assert_sample_equal({k: _from_json(v) for k, v in s.items()}, values_for(i))
