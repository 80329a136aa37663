"""Where a shard writer's bytes go: a temporary file renamed into place on commit.

A :class:`ShardSink` receives bytes in order and either commits them (they appear whole at their
final location) or aborts (nothing appears). Stores supply their own sinks (S3 multipart uploads);
the local one writes a temporary file in the target directory, fsyncs it and renames it. With
``exclusive=True`` (what data stores use) the rename never replaces an existing file: commit
raises :class:`FileExistsError` and leaves the existing file as it was.
"""

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

__all__ = ["LocalFileSink", "ShardSink", "SinkFactory", "atomic_write_bytes"]


class ShardSink(Protocol):
    location: str

    def write(self, data: bytes | memoryview) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


SinkFactory = Callable[[str], ShardSink]


class LocalFileSink:
    """Writes ``path`` atomically: temporary sibling, fsync, rename, fsync of the directory.

    ``exclusive=True``: ``commit()`` never replaces a file already at ``path`` (it raises
    FileExistsError, drops the temporary file and leaves that file untouched). The rename is then
    a hard link plus unlink of the temporary name (atomic and exclusive on POSIX filesystems);
    where hard links are unsupported, an empty placeholder is created with ``O_EXCL`` first and
    replaced by the rename, so no two exclusive sinks can both commit one path.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        buffer_size: int = 1 << 20,
        exclusive: bool = False,
    ) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.exclusive = exclusive
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(
            f".{self.path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        )
        self._file = open(self._tmp, "wb", buffering=buffer_size)  # noqa: SIM115 - closed in commit/abort

    def write(self, data: bytes | memoryview) -> None:
        self._file.write(data)

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if self.exclusive:
            try:
                _rename_no_replace(self._tmp, self.path)
            except BaseException:
                self._tmp.unlink(missing_ok=True)
                raise
        else:
            os.replace(self._tmp, self.path)
        _fsync_dir(self.path.parent)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)


_NO_HARD_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS)


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


def _fsync_dir(path: Path) -> None:
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


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write a small file atomically."""
    sink = LocalFileSink(path)
    try:
        sink.write(data)
        sink.commit()
    except BaseException:
        sink.abort()
        raise
