"""Header number fields (checksum, size) parse to the same values whether a buffer holds a few
headers (a streamed chunk: parsed row by row) or many (a mapped shard: parsed with arrays)."""

import numpy as np
import pytest

from atdata.shards import tar

ALPHABET = np.frombuffer(b"0123456777  \x00\x00x9-+8\xff", dtype=np.uint8)


def _fields(rng: np.random.Generator, rows: int, width: int) -> "np.ndarray":
    picks = rng.integers(0, len(ALPHABET), size=(rows, width))
    field = ALPHABET[picks].astype(np.int64)
    # some rows as a writer makes them: leading zeros/spaces, digits, NUL or space at the end
    for i in range(0, rows, 3):
        digits = rng.integers(0, 8, size=width - 1)
        field[i, : width - 1] = digits + 48
        field[i, width - 1] = 0 if i % 2 else 32
    field[0] = 32  # no digit at all
    return field


@pytest.mark.parametrize("width", [8, 12])
@pytest.mark.parametrize("seed", range(20))
def test_few_rows_parse_as_many_rows_do(seed: int, width: int) -> None:
    rng = np.random.default_rng(seed)
    field = _fields(rng, tar._FEW_ROWS, width)
    few = tar._parse_octal_rows(field)
    many = tar._parse_octal_rows_vectorised(field)
    assert few.tolist() == many.tolist()
    assert few[0] == -1


def test_first_octal_run_is_the_value() -> None:
    rows = [b" 000644\x00", b"x17 7\x00\x00\x00", b"\x00\x00\x00\x00\x00\x0012", b"89999999"]
    field = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(4, 8).astype(np.int64)
    assert tar._parse_octal_rows(field).tolist() == [0o644, 0o17, 0o12, -1]
    assert tar._parse_octal_rows_vectorised(field).tolist() == [0o644, 0o17, 0o12, -1]
