"""Local files written whole or not at all, and file digests: the package's one implementation.

:class:`AtomicFile` writes a file so that a reader, or the next process after a crash, sees
either the old content or the new, never a part: bytes go to a temporary sibling (same
directory, so the rename stays on one filesystem), which is flushed, fsynced and renamed over
the target, and then the directory is fsynced so that the rename itself survives a power loss.
``exclusive=True`` never replaces an existing target (:class:`FileExistsError`).
While a durable file is written, the kernel is asked to start writing each finished stretch to
disk (Linux ``sync_file_range``), so that the final fsync has little left to wait for and the disk
works while the writer computes. ``durable=False`` keeps the atomic rename but skips the fsyncs
(scratch output: running processes still see the old file or the whole new one, but after a
power loss or kernel crash the file may be missing, empty or incomplete).
:func:`atomic_write_bytes` is the one-call form for small files.

:func:`sha256_file` hashes a file with :func:`hashlib.file_digest`; :func:`hash_stream` hashes
an open binary stream (a shard source's) and counts its bytes, optionally passing each chunk on.
Code that hashes as a side effect of another loop (shard writer, cache fill, spool) keeps its own
running hasher.
"""

import errno
import hashlib
import os
import secrets
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = ["AtomicFile", "atomic_write_bytes", "fsync_dir", "hash_stream", "sha256_file"]

_HASH_CHUNK = 1 << 20
_NO_HARD_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS)
_WRITEBACK_CHUNK = 8 << 20  # a durable file asks for writeback of every this many bytes
_SYNC_FILE_RANGE_WRITE = 2  # linux/fs.h: start writeback of the range's dirty pages, do not wait


class AtomicFile:
    """``path``'s new content, written to a temporary sibling until :meth:`commit`.

    ``tmp`` names the temporary file (default ``.<name>.tmp-<pid>-<random>`` beside ``path``;
    it must be in the same directory). ``mode``: the new file's permission bits, set exactly
    whatever the umask (default: ``0o666`` less the umask, as :func:`open` does). The temporary
    file is created exclusively and never through a symlink. ``exclusive=True``: commit never
    replaces a file already at ``path`` (FileExistsError, the temporary file dropped, the
    existing one untouched) - a hard link plus unlink of the temporary name, or where hard
    links are unsupported an ``O_EXCL`` placeholder replaced by the rename.
    ``durable=False``: commit renames without fsyncing the file or the directory (see the
    module docstring); ``durable=True`` starts writeback of every 8 MiB as it is written.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        tmp: str | os.PathLike[str] | None = None,
        mode: int | None = None,
        exclusive: bool = False,
        buffer_size: int = 1 << 20,
        durable: bool = True,
    ) -> None:
        self.path = Path(path)
        self.exclusive = exclusive
        self.durable = durable
        self._written = 0  # bytes written so far
        self._flushed = 0  # bytes whose writeback was started
        self.tmp = (
            Path(tmp)
            if tmp is not None
            else self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        )
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.tmp, flags, 0o666 if mode is None else mode)
        try:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(fd, mode)  # exactly these bits, whatever the umask
            self._file: BinaryIO = os.fdopen(fd, "wb", buffering=buffer_size)
        except BaseException:
            os.close(fd)
            self.tmp.unlink(missing_ok=True)
            raise

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._file.write(data)
        self._written += memoryview(data).nbytes
        if self._written - self._flushed >= _WRITEBACK_CHUNK:
            self.start_writeback()

    def start_writeback(self) -> None:
        """Ask the kernel to start writing what is not yet on its way to disk (durable files;
        a hint, so that a later :meth:`commit` waits less)."""
        if self.durable and self._written > self._flushed:
            self._file.flush()
            _start_writeback(self._file.fileno(), self._flushed, self._written - self._flushed)
            self._flushed = self._written

    def commit(self, *, sync_dir: bool = True) -> None:
        """Make the bytes written so far ``path``'s content (durably unless ``durable=False``);
        on failure nothing changed. ``sync_dir=False``: the caller fsyncs the directory itself
        (:func:`fsync_dir`, once for several files) before it counts the rename as durable."""
        try:
            self._file.flush()
            if self.durable:
                os.fsync(self._file.fileno())
            self._file.close()
            if self.exclusive:
                _rename_no_replace(self.tmp, self.path)
            else:
                os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        if self.durable and sync_dir:
            fsync_dir(self.path.parent)

    def abort(self) -> None:
        """Drop the temporary file; ``path`` keeps what it had."""
        if not self._file.closed:
            self._file.close()
        self.tmp.unlink(missing_ok=True)


def atomic_write_bytes(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int | None = None,
    tmp: str | os.PathLike[str] | None = None,
) -> None:
    """Replace ``path``'s content with ``data`` atomically (see :class:`AtomicFile`)."""
    out = AtomicFile(path, tmp=tmp, mode=mode, buffer_size=0)
    try:
        out.write(data)
    except BaseException:
        out.abort()
        raise
    out.commit()


@cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's ``sync_file_range`` (Linux), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``fd``'s bytes ``[offset, offset+length)`` to disk, without
    waiting for them. A hint: where it is unsupported or fails, the final fsync does the work."""
    fn = _sync_file_range()
    if fn is not None:
        fn(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush ``path``'s directory entries (a rename or link into it) to disk, where possible.

    Best effort: platforms and filesystems that cannot open or fsync a directory are skipped.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _rename_no_replace(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` unless ``dst`` exists (FileExistsError, ``src`` kept)."""
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # no hard links here: claim the name with an exclusive create, then rename over our claim
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        os.replace(src, dst)
        return
    os.unlink(src)


def sha256_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """(sha256 hex digest, size in bytes) of the file at ``path``."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256")
        return digest.hexdigest(), f.tell()


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def hash_stream(
    stream: _Readable,
    algorithm: str = "sha256",
    *,
    on_chunk: Callable[[bytes], object] | None = None,
) -> tuple[str, int]:
    """(hex digest, size in bytes) of what ``stream`` yields until its end.

    ``algorithm`` is a :mod:`hashlib` name; ``on_chunk`` is called with each chunk after it
    was hashed (to copy it on, or to count progress).
    """
    hasher = hashlib.new(algorithm)
    size = 0
    while chunk := stream.read(_HASH_CHUNK):
        hasher.update(chunk)
        size += len(chunk)
        if on_chunk is not None:
            on_chunk(chunk)
    return hasher.hexdigest(), size
