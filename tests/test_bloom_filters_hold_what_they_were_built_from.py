"""The manifests' membership filter: every value it was built from is found, each value sets
exactly the bits ``(h1 + i * h2) % m`` that lookups test, and most absent values are ruled out."""

import random

from atdata.manifest.bloom import Bloom, _hashes


def _reference_bits(values: list[object], m: int, k: int) -> bytes:
    out = bytearray((m + 7) // 8)
    for value in set(values):
        h1, h2 = _hashes(value)
        for i in range(k):
            bit = (h1 + i * h2) % m
            out[bit >> 3] |= 1 << (bit & 7)
    return bytes(out)


def test_the_filter_sets_the_bits_lookups_test() -> None:
    rng = random.Random(7)
    for n in (0, 1, 3, 250, 5000):
        values: list[object] = [
            rng.choice(
                [
                    rng.randrange(10**15),
                    rng.randrange(-(10**30), 10**30),  # past 64 bits
                    f"id-{rng.random()}",
                    rng.random(),
                    float(rng.randrange(100)),  # 3.0 hashes as 3 does
                    False,
                    True,
                    "",
                ]
            )
            for _ in range(n)
        ]
        bloom = Bloom.of(values)
        assert bloom.bits == _reference_bits(values, bloom.m, bloom.k)
        assert all(bloom.may_contain(v) for v in values)


def test_absent_values_are_mostly_ruled_out() -> None:
    bloom = Bloom.of([f"present-{i}" for i in range(2000)])
    false_hits = sum(bloom.may_contain(f"absent-{i}") for i in range(20000))
    assert false_hits < 20000 * 0.03  # sized for 1 %
