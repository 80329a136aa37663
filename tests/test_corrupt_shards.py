"""Bad shards: every corruption is an AtdataError naming the shard and member; policies skip/warn.

Corruptions are made by editing the bytes of real shards written by ``write_samples`` (and of a
PAX tar written by Python's ``tarfile``). Reads go through both reader paths: the mmap path used
for local files, and the streaming path used for remote sources (driven here by a local file
handed out in short reads, as a network stream would be).
"""

import io
import tarfile
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import atdata
from atdata import AtdataError, AtdataWarning, Dataset, NDArray, SchemaError, ShardError
from atdata.codec import encode_array
from atdata.shards.offsets import OffsetIndex
from atdata.shards.tar import encode_header, padding
from atdata.sources.file import FileSource

N = 8


@atdata.packable
class Item:
    idx: int
    x: NDArray[np.float32]


class _ShortReads(io.RawIOBase):
    """A file handed out at most ``step`` bytes per read, as sockets do."""

    def __init__(self, path: str, step: int = 700) -> None:
        self._f = open(path, "rb")
        self._step = step

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._step
        return self._f.read(min(n, self._step))

    def close(self) -> None:
        self._f.close()
        super().close()


class StreamSource(FileSource):
    """A local file read through the streaming path (no mmap, short reads)."""

    def local_path(self) -> str | None:
        return None

    def open(self) -> BinaryIO:
        return _ShortReads(self.path)  # type: ignore[return-value]

    def read_range(self, start: int, length: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(length)


READERS: dict[str, Callable[[str], Any]] = {"mmap": FileSource, "stream": StreamSource}


def _items(start: int = 0, n: int = N) -> list[Item]:
    return [Item(i, np.arange(200 + i, dtype=np.float32)) for i in range(start, start + n)]


def _write(
    directory: Path, name: str = "s", start: int = 0, n: int = N
) -> tuple[bytes, OffsetIndex]:
    (info,) = atdata.write_samples(
        _items(start, n), str(directory / f"{name}-%06d.tar")
    ).shard_infos
    idx = OffsetIndex.from_bytes(Path(info.url + ".idx").read_bytes(), "idx")
    return Path(info.url).read_bytes(), idx


def _fix_checksum(data: bytearray, header: int) -> None:
    block = data[header : header + 512]
    block[148:156] = b"        "
    data[header + 148 : header + 156] = b"%06o\x00 " % sum(block)


def _set_size(data: bytes, header: int, size_field: bytes) -> bytes:
    out = bytearray(data)
    out[header + 124 : header + 136] = size_field
    _fix_checksum(out, header)
    return bytes(out)


def _read(
    path: Path,
    reader: str = "mmap",
    on_error: str = "raise",
    batch: int | None = None,
    typ: Any = Item,
) -> list[int]:
    ds = Dataset(str(path), typ, on_error=on_error, source_factory=READERS[reader])  # type: ignore[arg-type]
    if batch is None:
        return [s.idx for s in ds.ordered()]
    return [i for b in ds.ordered(batch_size=batch) for i in b.idx]


def _assert_names_member(exc: AtdataError, path: Path, offset: int) -> None:
    text = str(exc)
    assert str(path) in text
    assert f"member at byte {offset}" in text
    if isinstance(exc, ShardError):
        assert exc.shard == str(path)
        assert exc.offset == offset


@pytest.fixture()
def good(tmp_path: Path) -> tuple[bytes, OffsetIndex]:
    return _write(tmp_path)


# ------------------------------------------------------------------------------ truncation
@pytest.mark.parametrize("reader", ["mmap", "stream"])
@pytest.mark.parametrize("member", [0, 3, N - 1])
@pytest.mark.parametrize("where", ["header", "body"])
def test_truncated_shards_raise_naming_shard_and_member(
    tmp_path: Path, good: tuple[bytes, OffsetIndex], reader: str, member: int, where: str
) -> None:
    data, idx = good
    header = int(idx.header_offsets[member])
    cut = header + 100 if where == "header" else header + 512 + int(idx.sizes[member]) // 2
    bad = tmp_path / "bad.tar"
    bad.write_bytes(data[:cut])
    with pytest.raises(ShardError) as info:
        _read(bad, reader)
    _assert_names_member(info.value, bad, header)
    # the members before the cut were intact and are read under on_error="skip"
    assert _read(bad, reader, on_error="skip") == list(range(member))


# ------------------------------------------------------------------------------ headers
@pytest.mark.parametrize("reader", ["mmap", "stream"])
@pytest.mark.parametrize(
    "field_offset",
    [3, 100, 130, 150, 156, 300],
    ids=["name", "mode", "size", "checksum", "typeflag", "reserved"],
)
def test_a_flipped_header_byte_is_a_checksum_mismatch(
    tmp_path: Path, good: tuple[bytes, OffsetIndex], reader: str, field_offset: int
) -> None:
    data, idx = good
    header = int(idx.header_offsets[2])
    corrupt = bytearray(data)
    corrupt[header + field_offset] ^= 0x01
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(corrupt))
    with pytest.raises(ShardError) as info:
        _read(bad, reader)
    _assert_names_member(info.value, bad, header)


@pytest.mark.parametrize("reader", ["mmap", "stream"])
def test_a_checksum_mismatch_says_so(
    tmp_path: Path, good: tuple[bytes, OffsetIndex], reader: str
) -> None:
    data, idx = good
    header = int(idx.header_offsets[1])
    corrupt = bytearray(data)
    corrupt[header + 5] ^= 0xFF
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(corrupt))
    with pytest.raises(ShardError, match="checksum") as info:
        _read(bad, reader)
    _assert_names_member(info.value, bad, header)


@pytest.mark.parametrize("reader", ["mmap", "stream"])
@pytest.mark.parametrize(
    "size_field",
    [
        b"%011o\x00" % 100_000,
        b"77777777777\x00",  # 8**11 - 1
        b"\x80" + (2**40 - 1).to_bytes(11, "big"),  # GNU base-256
        b"\x80" + (2**41).to_bytes(11, "big"),  # beyond any member we accept
        b"\xff" + (5).to_bytes(11, "big"),  # negative
        b"12345zz\x00\x00\x00\x00\x00",  # not octal
    ],
    ids=["100k", "8**11-1", "2**40-1", "2**41", "negative", "garbage"],
)
@pytest.mark.timeout(60)
def test_a_size_field_beyond_the_file_fails_fast_without_allocating(
    tmp_path: Path, good: tuple[bytes, OffsetIndex], reader: str, size_field: bytes
) -> None:
    data, idx = good
    header = int(idx.header_offsets[4])
    bad = tmp_path / "bad.tar"
    bad.write_bytes(_set_size(data, header, size_field))
    tracemalloc.start()
    try:
        with pytest.raises(ShardError) as info:
            _read(bad, reader)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _assert_names_member(info.value, bad, header)
    assert peak < 32 << 20, f"reading allocated {peak} bytes"
    assert _read(bad, reader, on_error="skip") == [0, 1, 2, 3]


# ------------------------------------------------------------------------------ bodies
def _shard_with_bodies(path: Path, bodies: list[bytes]) -> list[int]:
    """A shard whose members have exactly these bodies; returns the header offsets."""
    out = bytearray()
    offsets = []
    for i, body in enumerate(bodies):
        offsets.append(len(out))
        out += encode_header(f"{i:08d}.msgpack".encode(), len(body)) + body + padding(len(body))
    out += bytes(1024)
    path.write_bytes(bytes(out))
    return offsets


def _good_body(i: int) -> bytes:
    return Item(i, np.arange(3, dtype=np.float32)).to_bytes()


BAD_BODIES = {
    "list": msgpack.packb([1, 2]),
    "int": msgpack.packb(7),
    "garbage": b"\xc1\xc1\xc1",
    "empty": b"",
    "truncated-map": msgpack.packb({"idx": 1, "x": b"abc"})[:-2],
}


@pytest.mark.parametrize("reader", ["mmap", "stream"])
@pytest.mark.parametrize("kind", sorted(BAD_BODIES))
def test_a_body_that_is_not_a_map_names_shard_and_member(
    tmp_path: Path, reader: str, kind: str
) -> None:
    path = tmp_path / "bodies.tar"
    offsets = _shard_with_bodies(path, [_good_body(0), BAD_BODIES[kind], _good_body(2)])
    for batch in (None, 2):
        with pytest.raises(SchemaError) as info:
            _read(path, reader, batch=batch)
        _assert_names_member(info.value, path, offsets[1])
        assert "00000001" in str(info.value)  # the sample key
    with pytest.raises(SchemaError):
        _read(path, reader, typ=atdata.DictSample)
    assert _read(path, reader, on_error="skip") == [0, 2]


def _array_body(i: int, payload: bytes) -> bytes:
    return msgpack.packb({"idx": i, "x": payload}, use_bin_type=True)


@pytest.mark.parametrize("reader", ["mmap", "stream"])
@pytest.mark.parametrize(
    "payload",
    [
        encode_array(np.zeros(4, np.float32))[:-4],  # shape says 4 elements, 3 follow
        encode_array(np.zeros(4, np.float32)) + b"\x00" * 4,  # 5 follow
        encode_array(np.zeros((2, 2), np.float32))[:-1],
        b"\x03<f4\x01\xff\xff\xff\xff\xff\xff\xff\x7f",  # a huge dimension, no data
        b"\x03<f4\x01\x00\x00\x00\x00\x00\x00\x00\x80",  # a negative dimension
        b"\x03<f4\x09" + b"\x00" * 8,  # ndim larger than the header
        b"\x03zz9\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00",  # not a dtype
        b"\x03|O8\x01\x01\x00\x00\x00\x00\x00\x00\x00" + b"\x00" * 8,  # object dtype
    ],
    ids=[
        "short",
        "long",
        "short-2d",
        "huge-dim",
        "negative-dim",
        "bad-ndim",
        "bad-dtype",
        "object",
    ],
)
def test_an_array_header_disagreeing_with_its_bytes_names_field_shard_and_member(
    tmp_path: Path, reader: str, payload: bytes
) -> None:
    path = tmp_path / "arrays.tar"
    offsets = _shard_with_bodies(path, [_good_body(0), _array_body(1, payload), _good_body(2)])
    for batch in (None, 3):
        with pytest.raises(SchemaError) as info:
            _read(path, reader, batch=batch)
        assert info.value.path == "$.x"
        assert "$.x" in str(info.value)
        _assert_names_member(info.value, path, offsets[1])
    ds = Dataset[Item](str(path), source_factory=READERS[reader])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)  # no sidecar: scanned once
        with pytest.raises(SchemaError) as info:
            ds[1]
    assert info.value.path == "$.x"
    _assert_names_member(info.value, path, offsets[1])
    assert ds[2].idx == 2
    assert _read(path, reader, on_error="skip", batch=2) == [0, 2]


# ------------------------------------------------------------------------------ policies
def test_skip_and_warn_continue_past_bad_samples(tmp_path: Path) -> None:
    path = tmp_path / "mixed-000000.tar"
    bodies = [_good_body(i) for i in range(10)]
    bodies[2] = msgpack.packb([1])
    bodies[7] = _array_body(7, b"\x03<f4\x01\x09" + b"\x00" * 7)
    _shard_with_bodies(path, bodies)
    expected = [0, 1, 3, 4, 5, 6, 8, 9]
    for batch in (None, 3):
        assert _read(path, on_error="skip", batch=batch) == expected
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert _read(path, on_error="warn", batch=batch) == expected
        assert [w.category for w in caught] == [AtdataWarning, AtdataWarning]
        assert str(path) in str(caught[0].message)
        assert "$.x" in str(caught[1].message)


@pytest.mark.parametrize("reader", ["mmap", "stream"])
def test_skip_and_warn_continue_with_the_next_shard(tmp_path: Path, reader: str) -> None:
    first, idx = _write(tmp_path, "a", 0)
    _write(tmp_path, "b", 100)
    header = int(idx.header_offsets[3])
    corrupt = bytearray(first)
    corrupt[header + 10] ^= 0x40  # checksum mismatch at member 3
    (tmp_path / "a-000000.tar").write_bytes(bytes(corrupt))
    ds = Dataset[Item](
        [str(tmp_path / "a-000000.tar"), str(tmp_path / "b-000000.tar")],
        on_error="skip",
        source_factory=READERS[reader],
    )
    expected = [0, 1, 2, *range(100, 100 + N)]
    assert [s.idx for s in ds.ordered()] == expected
    assert [i for b in ds.ordered(batch_size=4) for i in b.idx] == expected
    shuffled = sorted(s.idx for s in ds.shuffled(seed=1))
    if reader == "mmap":  # a local shard's headers are all checked first: the rest is skipped
        assert shuffled == expected
    else:  # remote members are read (and checked) one run at a time: only the damaged one goes
        assert shuffled == sorted([*expected, *range(4, N)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [s.idx for s in ds.with_on_error("warn").ordered()] == expected
    assert len(caught) == 1 and caught[0].category is AtdataWarning
    assert "a-000000.tar" in str(caught[0].message)
    assert f"member at byte {header}" in str(caught[0].message)
    with pytest.raises(ShardError):
        list(ds.with_on_error("raise").ordered())


def test_a_truncated_shard_is_skipped_and_the_rest_read(tmp_path: Path) -> None:
    first, idx = _write(tmp_path, "a", 0)
    _write(tmp_path, "b", 100)
    cut = int(idx.header_offsets[5]) + 700
    (tmp_path / "a-000000.tar").write_bytes(first[:cut])
    for policy in ("skip", "warn"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = _read(tmp_path / "a-000000.tar", on_error=policy)
            ds = Dataset[Item](str(tmp_path / "*-000000.tar"), on_error=policy)  # type: ignore[arg-type]
            both = [s.idx for s in ds.ordered()]
        assert got == [0, 1, 2, 3, 4]
        assert both == [0, 1, 2, 3, 4, *range(100, 100 + N)]
        assert len(caught) == (2 if policy == "warn" else 0)


# ------------------------------------------------------------------------------ fuzzing
def _foreign_pax_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for i, key in enumerate(["a", "ü" * 60, "b"]):
            for name, data in ((f"{key}.msgpack", _good_body(i)), (f"{key}.txt", b"t")):
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _headers(data: bytes) -> list[int]:
    """Offsets of the tar headers, as far as the archive can be walked."""
    out, pos = [], 0
    while pos + 512 <= len(data) and data[pos : pos + 512] != bytes(512):
        out.append(pos)
        try:
            size = int(data[pos + 124 : pos + 135], 8)
        except ValueError:
            break
        pos += 512 + size + (-size) % 512
    return out


_BASES: list[bytes] = []


def _bases() -> list[bytes]:
    if not _BASES:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            ours, _ = _write(Path(d), n=4)
        _BASES.extend([ours, _foreign_pax_tar()])
    return _BASES


positions = st.integers(min_value=0, max_value=1 << 20)
mutation = st.one_of(
    st.tuples(st.just("flip"), positions, st.integers(1, 255)),
    st.tuples(st.just("truncate"), positions),
    st.tuples(st.just("insert"), positions, st.binary(min_size=1, max_size=600)),
    st.tuples(st.just("delete"), positions, st.integers(1, 1100)),
    st.tuples(st.just("overwrite"), positions, st.binary(min_size=1, max_size=64)),
    # edits inside a header that keep its checksum valid, so the parser trusts them
    st.tuples(
        st.just("header"), positions, st.integers(0, 511), st.binary(min_size=1, max_size=16)
    ),
    st.tuples(
        st.just("size"),
        positions,
        st.one_of(
            st.integers(0, 8**11 - 1).map(lambda n: b"%011o\x00" % n),
            st.integers(0, 2**88 - 1).map(lambda n: b"\x80" + n.to_bytes(11, "big")),
        ),
    ),
    st.tuples(st.just("typeflag"), positions, st.sampled_from(b"0125x gLK7S\x00")),
)


def _mutate(data: bytes, ops: list[tuple[Any, ...]]) -> bytes:
    out = bytearray(data)
    for op in ops:
        kind, pos = op[0], op[1] % (len(out) + 1)
        headers = _headers(bytes(out))
        if kind == "flip" and out:
            out[pos % len(out)] ^= op[2]
        elif kind == "truncate":
            del out[pos:]
        elif kind == "insert":
            out[pos:pos] = op[2]
        elif kind == "delete":
            del out[pos : pos + op[2]]
        elif kind == "overwrite":
            out[pos : pos + len(op[2])] = op[2]
        elif headers:
            h = headers[op[1] % len(headers)]
            if kind == "header":
                patch = op[3][: 512 - op[2]]
                out[h + op[2] : h + op[2] + len(patch)] = patch
            elif kind == "size":
                out[h + 124 : h + 136] = op[2]
            else:
                out[h + 156] = op[2]
            _fix_checksum(out, h)
    return bytes(out)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.timeout(60)
@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(base=st.integers(0, 1), ops=st.lists(mutation, min_size=1, max_size=4))
def test_fuzzed_shards_fail_only_with_atdata_errors(
    fuzz_dir: Path, base: int, ops: list[tuple[Any, ...]]
) -> None:
    data = _mutate(_bases()[base], ops)
    path = fuzz_dir / "fuzz.tar"
    path.write_bytes(data)
    outcomes = {}
    tracemalloc.start()
    try:
        for reader in ("mmap", "stream"):
            outcomes[reader] = _outcome(path, reader)
            for typ in (Item, atdata.DictSample):
                for batch, policy in ((None, "raise"), (3, "skip")):
                    try:
                        _read_any(path, reader, typ, batch, policy)
                    except AtdataError:
                        pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"reading a {len(data)}-byte shard allocated {peak} bytes"
    # both reader paths see the same samples, or fail the same way at the same member
    assert outcomes["mmap"] == outcomes["stream"]


def _outcome(path: Path, reader: str) -> Any:
    try:
        return _read(path, reader)
    except AtdataError as exc:
        return type(exc).__name__, str(exc)


def _read_any(path: Path, reader: str, typ: Any, batch: int | None, policy: str) -> None:
    ds = Dataset(str(path), typ, on_error=policy, source_factory=READERS[reader])  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)
        for item in ds.ordered(batch_size=batch):
            if batch is not None and typ is Item:
                _ = item.x
        if policy == "raise" and batch is None:
            n = len(ds)
            if n:
                ds[n - 1]
