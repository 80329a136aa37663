"""CPU of the streamed-shard reader alone: tar parsing, buffering and read-ahead, no network.

    uv run python -m benchmarks.stream_cpu [--samples 2000] [--size 153600] [--repeat 5]

A transport stub hands the reader pre-cut 256 KiB ``bytes`` chunks (what the HTTP transport's
socket reads give it: ``iter_chunks``), so every microsecond measured is the reader's own:
the copy into its buffers, buffer reuse, tar header parsing and checksums, and (read-ahead on)
the hand-off from the filling thread. Members are ``<key>.msgpack`` bodies of ``--size`` bytes
(B3: 224x224x3 images, about 150 KB), in shards of 500. Prints CPU µs per sample (process
time; the consumer thread's alone in brackets), median of ``--repeat`` passes, read-ahead on,
auto (the default: the stub never makes a pull wait, so it stays inline) and off interleaved.
"""

import argparse
import io
import statistics
import tarfile
import time
from collections.abc import Iterator
from typing import BinaryIO, cast

from atdata.net.readahead import Mode, read_ahead
from atdata.shards.reader import _iter_stream

CHUNK = 256 << 10


def make_shard(first: int, count: int, size: int) -> bytes:
    out = io.BytesIO()
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(first, first + count):
            info = tarfile.TarInfo(f"{i:08d}.msgpack")
            info.size = size
            tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


class Stub(io.RawIOBase):
    """A remote stream's shape: ``iter_chunks`` (read-ahead's path) and ``readinto``."""

    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._next = 0
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def iter_chunks(self) -> Iterator[bytes]:
        while self._next < len(self._chunks):
            self._next += 1
            yield self._chunks[self._next - 1]

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        if not self._current:
            if self._next >= len(self._chunks):
                return 0
            self._current = memoryview(self._chunks[self._next])
            self._next += 1
        n = min(len(buffer), len(self._current))
        buffer[:n] = self._current[:n]
        self._current = self._current[n:]
        return n


def one_pass(shards: list[list[bytes]], mode: Mode) -> int:
    n = 0
    for chunks in shards:
        stream = read_ahead(cast(BinaryIO, Stub(chunks)), chunk=CHUNK, mode=mode)
        try:
            for _member, _body in _iter_stream(stream, "stub", 0):
                n += 1
        finally:
            stream.close()
    return n


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stream_cpu", description=__doc__)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--size", type=int, default=150 * 1024, help="bytes per member")
    p.add_argument("--per-shard", type=int, default=500)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    shards = []
    for first in range(0, args.samples, args.per_shard):
        data = make_shard(first, min(args.per_shard, args.samples - first), args.size)
        shards.append([data[i : i + CHUNK] for i in range(0, len(data), CHUNK)])
    total = sum(len(c) for s in shards for c in s)
    print(
        f"{args.samples:,} members of {args.size:,} B in {len(shards)} shards ({total / 1e6:.0f} MB)"
    )
    modes: tuple[Mode, ...] = ("on", "auto", "off")
    runs: dict[Mode, list[tuple[float, float]]] = {m: [] for m in modes}
    for _ in range(args.repeat):
        for mode in modes:
            c0, t0 = time.process_time(), time.thread_time()
            if one_pass(shards, mode) != args.samples:
                raise SystemExit("wrong member count")
            runs[mode].append((time.process_time() - c0, time.thread_time() - t0))
    for mode, rs in runs.items():
        cpu = statistics.median(r[0] for r in rs) / args.samples * 1e6
        mine = statistics.median(r[1] for r in rs) / args.samples * 1e6
        print(f"read-ahead {mode:<4}: {cpu:6.1f} µs/sample CPU ({mine:.1f} consumer)")


if __name__ == "__main__":
    main()
