"""A streamed shard is parsed out of buffers that the reader reuses once nothing points into
them: every body and every array decoded from one that the consumer still holds keeps its bytes,
whatever was read after it."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

from atdata import Dataset, write_samples
from atdata.sample import PackableSample
from atdata.shards.reader import iter_members
from atdata.sources.http import HttpSource
from http_server import FileServer

pytestmark = pytest.mark.services

N = 240  # ~28 MB: several of the reader's 4 MiB buffers


class Frame(PackableSample):
    pixels: np.ndarray
    label: int


def _pixels(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 255, (192, 192, 3), dtype=np.uint8)


@pytest.fixture
def shard_url(http_server: FileServer) -> tuple[str, Path]:
    samples = (Frame(pixels=_pixels(i), label=i) for i in range(N))
    (info,) = write_samples(
        samples, str(http_server.root / "frames-%06d.tar"), maxcount=N
    ).shard_infos
    return http_server.url_for(Path(info.url).name), Path(info.url)


@pytest.mark.parametrize("readahead", ["0", "262144"])
def test_bodies_held_across_refills_keep_their_bytes(
    shard_url: tuple[str, Path], readahead: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATDATA_READAHEAD_CHUNK", readahead)
    monkeypatch.setenv("ATDATA_READAHEAD", "off" if readahead == "0" else "on")
    url, path = shard_url
    expected = {m.name: bytes(body) for m, body in iter_members(str(path))}
    held = []
    seen = 0
    with HttpSource(url) as src:
        for i, (m, body) in enumerate(iter_members(src)):
            assert bytes(body) == expected[m.name]
            seen += 1
            if i % 7 == 0:
                held.append((m.name, body))  # the rest are dropped: their buffers get reused
            gc.collect() if i % 50 == 0 else None
    assert seen == len(expected) == N
    assert held and all(bytes(body) == expected[name] for name, body in held)


def test_arrays_held_from_a_remote_dataset_keep_their_values(
    shard_url: tuple[str, Path],
) -> None:
    url, _path = shard_url
    kept: list[tuple[int, np.ndarray]] = []
    for sample in Dataset[Frame](url, cache=False):
        if sample.label % 5 == 0:
            kept.append((sample.label, sample.pixels))
    assert [label for label, _ in kept] == list(range(0, N, 5))
    for label, pixels in kept:
        np.testing.assert_array_equal(pixels, _pixels(label))
