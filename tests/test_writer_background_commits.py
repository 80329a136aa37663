"""The shard writer's background thread: errors land on the right shard, nothing half-committed,
the queue's bound holds, and the checksums recorded are those of the bytes on disk."""

import hashlib
import os
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Annotated, Any

import msgpack
import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata._fs import sha256_file
from atdata.codec import codec_for
from atdata.errors import AtdataWarning
from atdata.sample import DictSample
from atdata.shards.offsets import OffsetIndex
from atdata.shards.sink import LocalFileSink, ShardSink
from atdata.shards.writer import ShardWriter


@atdata.packable
class Big:
    data: Annotated[NDArray[np.float32], atdata.Shape(256, 256)]
    label: int
    note: str | None = None


def _bigs(n: int) -> list[Big]:
    rng = np.random.default_rng(1)
    return [Big(data=rng.random((256, 256), dtype=np.float32), label=i) for i in range(n)]


class FailingSink:
    """A local sink that fails on its ``fail_on`` call of ``step`` ("write" or "commit")."""

    def __init__(self, path: str, step: str) -> None:
        self.inner = LocalFileSink(path)
        self.location = self.inner.location
        self.step = step

    def write(self, data: bytes | memoryview) -> None:
        if self.step == "write":
            raise OSError(28, "No space left on device (injected)")
        self.inner.write(data)

    def commit(self) -> None:
        if self.step == "commit":
            self.inner.abort()
            raise OSError(5, "Input/output error (injected)")
        self.inner.commit()

    def abort(self) -> None:
        self.inner.abort()


@pytest.mark.parametrize("step", ["write", "commit"])
def test_a_failing_background_step_is_raised_on_its_shard(tmp_path: Path, step: str) -> None:
    pattern = str(tmp_path / "x-%06d.tar")
    bad = pattern % 2

    def sinks(location: str) -> ShardSink:
        return FailingSink(location, step) if location == bad else LocalFileSink(location)

    writer: ShardWriter[Big] = ShardWriter(pattern, maxcount=3, sink_factory=sinks)
    with pytest.raises(OSError, match="injected") as err:
        with writer:
            writer.write_all(_bigs(20))
    assert any(bad in note for note in getattr(err.value, "__notes__", []))
    assert [Path(s.url).name for s in writer.shards] == ["x-000000.tar", "x-000001.tar"]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "x-000002.tar" not in names and "x-000003.tar" not in names
    assert not [n for n in names if ".tmp-" in n]  # the failed shard's temporary file is gone
    for info in writer.shards:  # what was committed is whole and hashed
        assert sha256_file(info.url) == (info.checksum.digest, info.size)


def test_an_error_is_raised_by_the_next_write_when_close_is_far(tmp_path: Path) -> None:
    pattern = str(tmp_path / "x-%06d.tar")
    failed = threading.Event()

    def sinks(location: str) -> ShardSink:
        failed.set()
        raise PermissionError(13, "refused (injected)", location)

    writer: ShardWriter[Big] = ShardWriter(pattern, maxcount=1000, sink_factory=sinks)
    samples = iter(_bigs(400))
    with pytest.raises(PermissionError, match="injected"):
        for sample in samples:
            writer.write(sample)
    assert failed.is_set()
    assert next(samples, None) is not None  # raised before the input ran out, not at close
    writer.abort()
    assert list(tmp_path.iterdir()) == []


class GatedSink:
    """A local sink whose writes wait for ``gate``; counts the bytes it received."""

    received = 0

    def __init__(self, path: str, gate: threading.Event) -> None:
        self.inner = LocalFileSink(path)
        self.location = self.inner.location
        self.gate = gate

    def write(self, data: bytes | memoryview) -> None:
        self.gate.wait()
        GatedSink.received += len(data)
        self.inner.write(data)

    def commit(self) -> None:
        self.inner.commit()

    def abort(self) -> None:
        self.inner.abort()


def test_the_queue_bound_holds_while_the_sink_is_stalled(tmp_path: Path) -> None:
    gate = threading.Event()
    bound = 4 << 20
    sample_bytes = 256 * 256 * 4
    produced: list[int] = []

    def samples() -> Any:
        for i, s in enumerate(_bigs(60)):
            produced.append(i)
            yield s

    writer: ShardWriter[Big] = ShardWriter(
        str(tmp_path / "x-%06d.tar"),
        maxcount=1000,
        sink_factory=lambda loc: GatedSink(loc, gate),
        max_queued_bytes=bound,
    )
    thread = threading.Thread(target=writer.write_all, args=(samples(),))
    thread.start()
    assert writer._background.waiting.wait(60)  # the producer blocked on the full queue
    # at most the bound (plus the batch being staged and one sample) left the producer
    assert len(produced) * sample_bytes <= bound + (1 << 20) + 2 * sample_bytes
    assert writer._background.peak_bytes <= bound + 2 * sample_bytes
    gate.set()
    thread.join(60)
    writer.close()
    assert writer._background.peak_bytes <= bound + 2 * sample_bytes
    assert sum(s.count for s in writer.shards) == 60
    assert len(produced) == 60


def test_recorded_checksums_are_those_of_the_bytes_on_disk(tmp_path: Path) -> None:
    ds = atdata.write_samples(_bigs(25), str(tmp_path / "x-%06d.tar"), maxcount=7)
    assert len(ds.shard_infos) == 4
    for info in ds.shard_infos:
        assert sha256_file(info.url) == (info.checksum.digest, info.size)
        assert info.sidecar_checksum is not None and info.manifest_checksum is not None
        assert sha256_file(info.url + ".idx")[0] == info.sidecar_checksum.digest
        assert sha256_file(info.url + ".manifest")[0] == info.manifest_checksum.digest
    assert [s.label for s in ds] == list(range(25))


def test_large_arrays_are_packed_exactly_as_msgpack_packs_them() -> None:
    codec = codec_for(Big)
    rng = np.random.default_rng(2)
    fortran = np.asfortranarray(rng.random((256, 256), dtype=np.float32))
    for sample in (
        Big(data=rng.random((256, 256), dtype=np.float32), label=3, note="x"),
        Big(data=fortran, label=-1),
        Big(data=rng.random((512, 512), dtype=np.float32)[::2, ::2], label=7),
    ):
        parts = codec.encode_parts(sample)
        assert len(parts) > 1  # the array went into a piece of its own
        assert b"".join(parts) == codec.encode(sample)
        assert msgpack.unpackb(b"".join(parts))["label"] == sample.label


def test_shards_are_byte_identical_to_a_synchronous_write(tmp_path: Path) -> None:
    """The same samples twice give the same bytes (determinism survives the thread)."""
    a = atdata.write_samples(_bigs(9), str(tmp_path / "a-%06d.tar"), maxcount=4)
    b = atdata.write_samples(_bigs(9), str(tmp_path / "b-%06d.tar"), maxcount=4)
    assert [i.checksum for i in a.shard_infos] == [i.checksum for i in b.shard_infos]


_KILLED_WRITER = """
import os, sys, numpy as np, atdata
from atdata.sample import DictSample
sys.path.insert(0, sys.argv[2])
from waiting import wait_until
first = sys.argv[1] % 0
def samples():
    rng = np.random.default_rng(0)
    for i in range(10**9):
        if i == 40:  # two shards handed to the background thread: wait for the first's commit
            wait_until(
                lambda: os.path.exists(first) and os.path.exists(first + '.idx'),
                'the first shard and its sidecar committed',
            )
            print('committed', flush=True)
        yield DictSample(i=i, blob=rng.integers(0, 255, 1 << 16, dtype=np.uint8))
atdata.write_samples(samples(), sys.argv[1], maxcount=16, durable=sys.argv[3] == "durable")
"""


@pytest.mark.parametrize("durability", ["durable", "scratch"])  # scratch: durable=False
def test_a_killed_writer_leaves_no_partial_shard_under_a_final_name(
    tmp_path: Path, durability: str
) -> None:
    pattern = str(tmp_path / "k-%06d.tar")
    tests_dir = str(Path(__file__).resolve().parent)
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, pattern, tests_dir, durability],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "committed"  # the child saw shard 0 committed
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(60)
    proc.stdout.close()
    finals = sorted(p for p in tmp_path.iterdir() if p.name.endswith(".tar"))
    assert tmp_path / "k-000000.tar" in finals  # the committed shard survived the kill
    whole = tmp_path / "k-000000.tar"
    index = OffsetIndex.from_bytes(Path(str(whole) + ".idx").read_bytes(), str(whole))
    assert index.sha256 == hashlib.sha256(whole.read_bytes()).hexdigest()
    assert [s["i"] for s in atdata.Dataset[DictSample](str(whole))] == list(range(16))
    for path in finals:  # every shard under its final name is whole: 16 samples, hash = sidecar's
        if Path(str(path) + ".idx").exists():
            index = OffsetIndex.from_bytes(Path(str(path) + ".idx").read_bytes(), str(path))
            assert index.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        with warnings.catch_warnings():  # killed after the shard's commit, before its sidecar
            warnings.simplefilter("ignore", AtdataWarning)
            samples = list(atdata.Dataset[DictSample](str(path)))
        assert len(samples) == 16


def test_a_queue_bound_below_one_byte_is_refused(tmp_path: Path) -> None:
    with pytest.raises(atdata.errors.InvalidArgumentError, match="max_queued_bytes"):
        ShardWriter(str(tmp_path / "x-%06d.tar"), max_queued_bytes=0)
