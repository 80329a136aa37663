"""Sample types and transforms the derive tests run (module-level: process pools and the CLI
import them by reference)."""

import os
import time
from pathlib import Path

import atdata

#: every sample a transform of this module was called on, in this process
CALLS: list[int] = []


@atdata.packable
class Frame:
    i: int
    text: str


@atdata.packable
class Count:
    i: int
    words: int


def count_words(s: Frame) -> Count:
    """One Count per Frame; raises on samples whose text says so."""
    CALLS.append(s.i)
    if "boom" in s.text:
        raise ValueError(f"cannot count sample {s.i}")
    return Count(i=s.i, words=len(s.text.split()))


def keep_even(s: Frame) -> Frame | None:
    CALLS.append(s.i)
    return s if s.i % 2 == 0 else None


def count_batch(batch: list[Frame]) -> list[Count]:
    CALLS.extend(s.i for s in batch)
    return [Count(i=s.i, words=len(s.text.split())) for s in batch]


def stalling_count(s: Frame) -> Count:
    """As count_words; with DERIVE_STALL_AT=<i> and DERIVE_STALL_FILE, it touches the file at
    sample i and then waits to be killed (the kill test's subprocess)."""
    stall = os.environ.get("DERIVE_STALL_AT")
    if stall is not None and s.i == int(stall):
        Path(os.environ["DERIVE_STALL_FILE"]).touch()
        while True:
            time.sleep(0.05)
    return count_words(s)


def frames(start: int, n: int, *, word: str = "w") -> list[Frame]:
    return [Frame(i=i, text=" ".join([word] * (1 + i % 4))) for i in range(start, start + n)]
