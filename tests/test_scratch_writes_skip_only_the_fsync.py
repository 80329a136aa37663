"""``durable=False`` writes the same bytes, still renames each file into place whole, and never
fsyncs; durable writes fsync every file (and the directory once per shard, after the renames of the
shard and its sidecars) and start its writeback while it is being written."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import atdata
import atdata._fs as fs
from atdata._fs import AtomicFile, sha256_file
from atdata.errors import InvalidArgumentError
from atdata.sample import DictSample
from atdata.shards.sink import LocalFileSink
from atdata.shards.writer import ShardWriter


def _samples(n: int) -> list[DictSample]:
    rng = np.random.default_rng(3)
    return [DictSample(i=i, x=rng.random((64, 64), dtype=np.float32)) for i in range(n)]


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    synced: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return synced


def test_scratch_and_durable_writes_give_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "durable").mkdir()
    (tmp_path / "scratch").mkdir()
    synced = _record_fsyncs(monkeypatch)
    a = atdata.write_samples(_samples(30), str(tmp_path / "durable" / "x-%06d.tar"), maxcount=8)
    durable_syncs = len(synced)
    b = atdata.write_samples(
        _samples(30), str(tmp_path / "scratch" / "x-%06d.tar"), maxcount=8, durable=False
    )
    monkeypatch.undo()
    assert len(synced) == durable_syncs  # the scratch write fsynced nothing
    # each shard, its .idx and its .manifest are fsynced, then renamed; their directory is
    # fsynced once, after the last of the three renames, before the shard is reported
    directory = (tmp_path / "durable").stat().st_ino
    assert durable_syncs == 4 * (3 + 1)
    for n, info in enumerate(a.shard_infos):
        group = synced[4 * n : 4 * n + 4]
        files = [os.stat(info.url + ext).st_ino for ext in ("", ".idx", ".manifest")]
        assert group == [*files, directory]
    assert _files(tmp_path / "durable") == _files(tmp_path / "scratch")
    assert [i.checksum for i in a.shard_infos] == [i.checksum for i in b.shard_infos]
    for info in b.shard_infos:
        assert sha256_file(info.url) == (info.checksum.digest, info.size)
    assert [s["i"] for s in b] == list(range(30))


def test_a_scratch_file_appears_only_when_committed(tmp_path: Path) -> None:
    target = tmp_path / "state.bin"
    target.write_bytes(b"old")
    out = AtomicFile(target, durable=False)
    out.write(b"new " * 1000)
    assert target.read_bytes() == b"old"
    out.abort()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.bin"]
    out = AtomicFile(target, durable=False)
    out.write(b"new")
    out.commit()
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.bin"]


def test_a_durable_file_starts_writeback_of_what_it_has_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[int, int]] = []
    real = fs._start_writeback

    def recording(fd: int, offset: int, length: int) -> None:
        assert os.fstat(fd).st_size >= offset + length  # only bytes already in the file
        started.append((offset, length))
        real(fd, offset, length)

    monkeypatch.setattr(fs, "_start_writeback", recording)
    chunk = bytes(range(256)) * 4096  # 1 MiB
    for durable in (True, False):
        out = LocalFileSink(tmp_path / f"f-{durable}.bin", durable=durable)
        for _ in range(20):
            out.write(chunk)
        out.commit()
        assert (tmp_path / f"f-{durable}.bin").read_bytes() == chunk * 20
    assert started == [(0, 8 << 20), (8 << 20, 8 << 20)]  # none for the scratch file


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_writeback_is_started_through_the_kernel_on_linux(tmp_path: Path) -> None:
    assert fs._sync_file_range() is not None
    with open(tmp_path / "f", "wb") as f:
        f.write(b"x" * 4096)
        f.flush()
        fs._start_writeback(f.fileno(), 0, 4096)  # a hint: returns without waiting or raising


def test_durable_false_is_refused_with_a_sink_factory(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="durable=False"):
        ShardWriter(str(tmp_path / "x-%06d.tar"), sink_factory=LocalFileSink, durable=False)
