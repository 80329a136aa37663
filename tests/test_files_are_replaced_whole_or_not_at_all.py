"""Local files are replaced whole or not at all, durably; file digests match hashlib's."""

import hashlib
import io
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from atdata._fs import AtomicFile, atomic_write_bytes, fsync_dir, hash_stream, sha256_file


def _leftovers(directory: Path, keep: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != keep)


def test_a_write_that_raises_midway_leaves_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old content")
    out = AtomicFile(target)
    with pytest.raises(RuntimeError, match="midway"):
        try:
            out.write(b"new con")
            raise RuntimeError("midway")
        except BaseException:
            out.abort()
            raise
    assert target.read_bytes() == b"old content"
    assert _leftovers(tmp_path, "state.json") == []


def test_a_completed_write_leaves_the_new_content(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old content")
    out = AtomicFile(target)
    for piece in (b"new ", b"content", b" in three writes"):
        out.write(piece)
    assert target.read_bytes() == b"old content"  # nothing shows before the commit
    out.commit()
    assert target.read_bytes() == b"new content in three writes"
    assert _leftovers(tmp_path, "state.json") == []


def test_a_process_killed_before_commit_leaves_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "state.bin"
    target.write_bytes(b"old" * 1000)
    script = textwrap.dedent(
        f"""
        import os
        from atdata._fs import AtomicFile
        out = AtomicFile({str(target)!r}, buffer_size=0)
        out.write(b"half of the new bytes")
        os._exit(3)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], check=False)
    assert done.returncode == 3
    assert target.read_bytes() == b"old" * 1000


def test_an_exclusive_commit_never_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "shard.tar"
    target.write_bytes(b"first writer")
    out = AtomicFile(target, exclusive=True)
    out.write(b"second writer")
    with pytest.raises(FileExistsError):
        out.commit()
    assert target.read_bytes() == b"first writer"
    assert _leftovers(tmp_path, "shard.tar") == []


def test_an_exclusive_commit_creates_a_missing_file(tmp_path: Path) -> None:
    target = tmp_path / "shard.tar"
    out = AtomicFile(target, exclusive=True)
    out.write(b"only writer")
    out.commit()
    assert target.read_bytes() == b"only writer"
    assert _leftovers(tmp_path, "shard.tar") == []


def test_mode_sets_exact_permissions_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        atomic_write_bytes(tmp_path / "open.txt", b"x", mode=0o644)
        atomic_write_bytes(tmp_path / "secret.txt", b"x", mode=0o600)
    finally:
        os.umask(previous)
    os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "default.txt", b"x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "open.txt").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "secret.txt").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "default.txt").st_mode) == 0o644


def test_a_replaced_file_keeps_no_link_to_the_old_one(tmp_path: Path) -> None:
    """The rename replaces the directory entry: a reader holding the old file keeps its bytes."""
    target = tmp_path / "state.json"
    atomic_write_bytes(target, b"version 1")
    with open(target, "rb") as reader:
        atomic_write_bytes(target, b"version 2")
        assert reader.read() == b"version 1"
    assert target.read_bytes() == b"version 2"


def test_the_temporary_file_is_never_written_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    planted = tmp_path / ".planted"
    planted.symlink_to(victim)
    with pytest.raises(FileExistsError):
        AtomicFile(tmp_path / "target", tmp=planted)
    assert victim.read_bytes() == b"untouched"
    assert not (tmp_path / "target").exists()


def test_commit_fsyncs_the_file_and_then_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename is made durable: after the file's own fsync comes one of its directory."""
    synced: list[tuple[bool, int]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        st = os.fstat(fd)
        synced.append((stat.S_ISDIR(st.st_mode), st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    target = tmp_path / "state.json"
    atomic_write_bytes(target, b"durable")
    monkeypatch.undo()
    assert synced == [
        (False, os.stat(target).st_ino),
        (True, os.stat(tmp_path).st_ino),
    ]


def test_fsync_dir_skips_what_it_cannot_open(tmp_path: Path) -> None:
    fsync_dir(tmp_path)  # a directory: synced
    fsync_dir(tmp_path / "missing")  # nothing there: nothing to do, no error


def test_sha256_file_equals_hashlib_on_a_multi_chunk_file(tmp_path: Path) -> None:
    data = os.urandom((3 << 20) + 12345)  # several of file_digest's reads, and a partial one
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == (hashlib.sha256(data).hexdigest(), len(data))
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert sha256_file(empty) == (hashlib.sha256(b"").hexdigest(), 0)


def test_hash_stream_equals_hashlib_and_passes_every_chunk_on() -> None:
    data = os.urandom((2 << 20) + 777)
    seen: list[bytes] = []
    digest, size = hash_stream(io.BytesIO(data), on_chunk=seen.append)
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert len(seen) > 1 and b"".join(seen) == data
    assert hash_stream(io.BytesIO(data), "md5") == (hashlib.md5(data).hexdigest(), len(data))


def test_a_write_of_unwritable_data_leaves_the_old_content(tmp_path: Path) -> None:
    """atomic_write_bytes: an error while writing drops the temporary file, the old file stays."""
    target = tmp_path / "state.json"
    target.write_bytes(b"old content")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "text, not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old content"
    assert _leftovers(tmp_path, "state.json") == []
