"""Hostile array headers (compact layout and ``.npy``) end in SchemaError, never in numpy's errors.

Each payload is stored as the array field of a sample in a real shard, between two good samples,
and read through every read path: iteration, batches (the fast collation path), ``ds[i]`` and
``on_error="skip"``. ``.npy`` payloads of every format version that numpy writes decode.
"""

import io
import struct
import warnings
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

import atdata
from atdata import AtdataWarning, Dataset, NDArray, SchemaError
from atdata.codec import decode_array
from atdata.shards.tar import encode_header, padding


@atdata.packable
class Item:
    idx: int
    x: NDArray[Any]


def _compact(dtype: str, shape: tuple[int, ...], body: bytes = b"") -> bytes:
    d = dtype.encode()
    return (
        bytes((len(d),)) + d + bytes((len(shape),)) + struct.pack(f"<{len(shape)}q", *shape) + body
    )


def _npy_raw(header: str | bytes, version: tuple[int, int] = (1, 0), body: bytes = b"") -> bytes:
    """A ``.npy`` payload with exactly this header text (padded with spaces and a newline)."""
    text = header.encode("utf-8") if isinstance(header, str) else header
    text += b" " * ((-len(text) - 1) % 64) + b"\n"
    size = struct.pack("<H" if version == (1, 0) else "<I", len(text))
    return b"\x93NUMPY" + bytes(version) + size + text + body


def _npy(arr: np.ndarray, version: tuple[int, int] | None) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version)
    return buf.getvalue()


HOSTILE_COMPACT = {
    "itemsize-0 bytes": _compact("|S0", (5,)),
    "itemsize-0 str": _compact("<U0", (3,)),
    "itemsize-0 void": _compact("|V0", (1,)),
    "subarray": _compact("(2,)<f4", (1,), bytes(8)),
    "structured": _compact("<f4,<i4", (1,), bytes(8)),
    "255 dims": _compact("|u1", (1,) * 255, b"\x00"),
    "65 dims": _compact("|u1", (1,) * 65, b"\x00"),
    "zero next to huge": _compact("|u1", (0, 2**62, 2**62)),
    "huge times itemsize": _compact("<f8", (0, 2**61)),
}

HOSTILE_NPY = {
    "version 4": _npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", (4, 0)),
    "header longer than the payload": b"\x93NUMPY\x02\x00\xff\xff\xff\xff" + bytes(64),
    "header over the limit": _npy_raw(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }" + " " * 70000, (2, 0)
    ),
    "itemsize-0": _npy_raw("{'descr': '|S0', 'fortran_order': False, 'shape': (4,), }"),
    "subarray": _npy_raw("{'descr': '(2,)<f4', 'fortran_order': False, 'shape': (1,), }"),
    "structured": _npy_raw(
        "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", body=bytes(4)
    ),
    "object": _npy_raw("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", body=bytes(8)),
    "255 dims": _npy_raw(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (" + "1, " * 255 + "), }", body=b"\0"
    ),
    "zero next to huge": _npy_raw(
        f"{{'descr': '|u1', 'fortran_order': False, 'shape': (0, {2**62}, {2**62}), }}"
    ),
    "a 30-digit dimension": _npy_raw(
        f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({10**29},), }}"
    ),
    "negative dimension": _npy_raw("{'descr': '|u1', 'fortran_order': False, 'shape': (-1,), }"),
    "nested shape": _npy_raw("{'descr': '|u1', 'fortran_order': False, 'shape': ((1,),), }"),
    "missing key": _npy_raw("{'descr': '|u1', 'shape': (1,), }", body=b"\0"),
    "extra key": _npy_raw(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (1,), 'x': 1, }", body=b"\0"
    ),
    "duplicate key": _npy_raw(
        "{'descr': '|u1', 'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", body=b"\0"
    ),
    "an expression": _npy_raw(
        "{'descr': __import__('os').getcwd(), 'fortran_order': False, 'shape': (1,), }"
    ),
    "not a dict": _npy_raw("('|u1', False, (1,))", body=b"\0"),
    "text after the dict": _npy_raw(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (1,), } 1", body=b"\0"
    ),
    "bad utf-8 in v3": _npy_raw(
        b"{'descr': '|u1\xff', 'fortran_order': False, 'shape': (1,), }", (3, 0), b"\0"
    ),
    "unknown dtype": _npy_raw("{'descr': 'zz9', 'fortran_order': False, 'shape': (1,), }"),
    "deeply nested": _npy_raw("{'descr': " + "(" * 5000 + ")" * 5000 + "}"),
    "fortran_order not a bool": _npy_raw(
        "{'descr': '|u1', 'fortran_order': 'yes', 'shape': (1,), }", body=b"\0"
    ),
    "shape not a tuple": _npy_raw(
        "{'descr': '|u1', 'fortran_order': False, 'shape': 'x', }", body=b"\0"
    ),
    "bytes disagree with the shape": _npy(np.arange(4, dtype=np.int32), (3, 0))[:-1],
    "truncated before the header size": b"\x93NUMPY\x02\x00\x10",
}

HOSTILE = {f"compact: {k}": v for k, v in HOSTILE_COMPACT.items()}
HOSTILE.update({f"npy: {k}": v for k, v in HOSTILE_NPY.items()})


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_array_header_is_a_schema_error(name: str) -> None:
    with pytest.raises(SchemaError):
        decode_array(HOSTILE[name])


def _shard(path: Path, payload: bytes) -> None:
    bodies = [
        Item(0, np.arange(3, dtype=np.float32)).to_bytes(),
        msgpack.packb({"idx": 1, "x": payload}, use_bin_type=True),
        Item(2, np.arange(3, dtype=np.float32)).to_bytes(),
    ]
    out = bytearray()
    for i, body in enumerate(bodies):
        out += encode_header(f"{i:08d}.msgpack".encode(), len(body)) + body + padding(len(body))
    path.write_bytes(bytes(out + bytes(1024)))


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_every_read_path_names_the_field_and_skip_continues(tmp_path: Path, name: str) -> None:
    path = tmp_path / "hostile.tar"
    _shard(path, HOSTILE[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)  # no sidecar: scanned once
        for batch in (None, 3):
            with pytest.raises(SchemaError) as info:
                list(Dataset[Item](str(path)).ordered(batch_size=batch))
            assert info.value.path == "$.x" and str(path) in str(info.value)
        ds = Dataset[Item](str(path))
        with pytest.raises(SchemaError):
            ds[1]
        skipping = Dataset[Item](str(path), on_error="skip")
        assert [s.idx for s in skipping.ordered()] == [0, 2]
        assert [i for b in skipping.ordered(batch_size=2) for i in b.idx] == [0, 2]


@pytest.mark.parametrize("version", [None, (1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize(
    "arr",
    [
        np.arange(12, dtype="<f4").reshape(3, 4),
        np.asfortranarray(np.arange(12, dtype=">i8").reshape(3, 4)),
        np.zeros((0, 5), dtype="<c8"),
        np.array(7, dtype="|u1"),
        np.array(["ab", "ü"], dtype="<U2"),
    ],
    ids=["f4", "fortran-i8", "empty", "0-d", "unicode"],
)
def test_npy_payloads_numpy_writes_decode_in_every_version(
    arr: np.ndarray, version: tuple[int, int] | None
) -> None:
    back = decode_array(_npy(arr, version))
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert np.array_equal(back, arr)
    body = msgpack.packb({"idx": 0, "x": _npy(arr, version)}, use_bin_type=True)
    assert np.array_equal(Item.from_bytes(body).x, arr)


def test_a_v3_npy_with_a_utf8_field_name_is_refused_as_structured() -> None:
    # numpy writes version 3.0 when the header needs UTF-8: only structured dtypes do that
    arr = np.zeros(2, dtype=[("名", "<f4")])
    with pytest.raises(SchemaError, match="structured"):
        decode_array(_npy(arr, (3, 0)))
