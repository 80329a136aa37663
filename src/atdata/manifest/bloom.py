"""A small Bloom filter for set membership of high-cardinality fields (ids): no false negatives,
false positives at about :data:`FALSE_POSITIVE_RATE` for the number of items it was sized for."""

import hashlib
import math
from typing import Any

import numpy as np

__all__ = ["FALSE_POSITIVE_RATE", "Bloom"]

#: The false-positive rate a filter is sized for (1 %: about 9.6 bits per distinct value).
FALSE_POSITIVE_RATE = 0.01
_MAX_BITS = 1 << 27  # 16 MiB: no filter (and no hostile record) asks for more


def _canonical(value: Any) -> str:
    """Equal values (``3 == 3.0 == True``-style, as Python compares them) hash alike."""
    if isinstance(value, str):
        return "s" + value
    if isinstance(value, float) and value.is_integer():
        return f"n{int(value)}"
    if isinstance(value, bool | int):
        return f"n{int(value)}"
    return "r" + repr(value)


def _hashes(value: Any) -> tuple[int, int]:
    digest = hashlib.blake2b(_canonical(value).encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little") | 1


def _hash_columns(
    values: list[Any],
) -> "tuple[np.ndarray[Any, np.dtype[np.uint64]], np.ndarray[Any, np.dtype[np.uint64]]]":
    """:func:`_hashes` of each of ``values``, as two uint64 columns (the same numbers)."""
    canon = [
        ("s" + v) if type(v) is str else f"n{v}" if type(v) is int else _canonical(v)
        for v in values
    ]
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(c.encode(), digest_size=16).digest() for c in canon])
    pairs = np.frombuffer(digests, dtype="<u8").reshape(len(values), 2)
    return pairs[:, 0].astype(np.uint64), pairs[:, 1] | np.uint64(1)


class Bloom:
    """``m`` bits, ``k`` probes by double hashing of a blake2b digest of the value."""

    def __init__(self, bits: bytes, m: int, k: int) -> None:
        self.bits = bits
        self.m = m
        self.k = k

    @classmethod
    def of(cls, values: Any, rate: float = FALSE_POSITIVE_RATE) -> "Bloom":
        items = set(values)
        n = max(1, len(items))
        m = min(_MAX_BITS, max(64, math.ceil(-n * math.log(rate) / math.log(2) ** 2)))
        k = max(1, round(m / n * math.log(2)))
        # bit i of a value is (h1 + i * h2) % m, as may_contain computes it; reduced mod m
        # first, every term fits in 64 bits (m < 2**27, k < 64), so numpy sets them all at once
        first, second = _hash_columns(list(items))
        h1, h2 = first % np.uint64(m), second % np.uint64(m)
        steps = np.arange(k, dtype=np.uint64)
        bits = (h1[:, None] + steps[None, :] * h2[:, None]) % np.uint64(m)
        bitmap = np.zeros(m, dtype=bool)
        bitmap[bits.ravel()] = True
        arr = np.packbits(bitmap, bitorder="little")
        return cls(arr.tobytes(), m, k)

    def may_contain(self, value: Any) -> bool:
        h1, h2 = _hashes(value)
        bits = self.bits
        for i in range(self.k):
            bit = (h1 + i * h2) % self.m
            if not bits[bit >> 3] & (1 << (bit & 7)):
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"m": self.m, "k": self.k, "bits": self.bits}

    @classmethod
    def from_dict(cls, data: Any) -> "Bloom | None":
        """A filter from its record, or None when the record is malformed (then unused)."""
        if not isinstance(data, dict):
            return None
        m, k, bits = data.get("m"), data.get("k"), data.get("bits")
        if not (isinstance(m, int) and isinstance(k, int) and isinstance(bits, bytes)):
            return None
        if not (0 < m <= _MAX_BITS and 0 < k <= 64 and len(bits) == (m + 7) // 8):
            return None
        return cls(bits, m, k)
