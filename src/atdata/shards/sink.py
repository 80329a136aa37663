"""Where a shard writer's bytes go: a temporary file renamed into place on commit.

A :class:`ShardSink` receives bytes in order and either commits them (they appear whole at their
final location) or aborts (nothing appears). Stores supply their own sinks (S3 multipart uploads);
the local one writes a temporary file in the target directory, fsyncs it and renames it.
"""

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
    """Writes ``path`` atomically: temporary sibling, fsync, rename, fsync of the directory."""

    def __init__(self, path: str | os.PathLike[str], *, buffer_size: int = 1 << 20) -> None:
        self.path = Path(path)
        self.location = str(self.path)
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
        os.replace(self._tmp, self.path)
        _fsync_dir(self.path.parent)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)


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
