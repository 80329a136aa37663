"""Where a shard writer's bytes go: a temporary file renamed into place on commit.

A :class:`ShardSink` receives bytes in order and either commits them (they appear whole at their
final location) or aborts (nothing appears). Stores supply their own sinks (S3 multipart uploads);
the local one writes a temporary file in the target directory, fsyncs it and renames it. With
``exclusive=True`` (what data stores use) the rename never replaces an existing file: commit
raises :class:`FileExistsError` and leaves the existing file as it was.
"""

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .._fs import AtomicFile

__all__ = ["LocalFileSink", "ShardSink", "SinkFactory", "commit_sink", "write_whole"]


class ShardSink(Protocol):
    location: str

    def write(self, data: bytes | memoryview) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


SinkFactory = Callable[[str], ShardSink]


class LocalFileSink(AtomicFile):
    """Writes ``path`` atomically: temporary sibling, fsync, rename, fsync of the directory.

    ``exclusive=True``: ``commit()`` never replaces a file already at ``path`` (it raises
    FileExistsError, drops the temporary file and leaves that file untouched); see
    :class:`atdata._fs.AtomicFile`, which this is, with the parent directories created.
    ``durable=False``: still renamed into place whole, but never fsynced (scratch output).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        buffer_size: int = 1 << 20,
        exclusive: bool = False,
        durable: bool = True,
    ) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(path, buffer_size=buffer_size, exclusive=exclusive, durable=durable)
        self.location = str(self.path)


def write_whole(
    open_sink: SinkFactory, location: str, data: bytes, *, dirs_to_sync: set[Path] | None = None
) -> str:
    """Write ``data`` to ``location`` through a sink from ``open_sink``: committed whole, or
    aborted (nothing appears) on any failure. The sha256 hex digest of ``data``.

    ``dirs_to_sync``: a durable local file is renamed into place without fsyncing its directory,
    which is added to the set instead; the caller fsyncs each directory in it
    (:func:`atdata._fs.fsync_dir`) before it counts the file as durable."""
    sink = open_sink(location)
    try:
        sink.write(data)
        commit_sink(sink, dirs_to_sync)
    except BaseException:
        sink.abort()
        raise
    return hashlib.sha256(data).hexdigest()


def commit_sink(sink: "ShardSink", dirs_to_sync: set[Path] | None = None) -> None:
    """``sink.commit()``; with ``dirs_to_sync``, a durable local file is renamed into place
    without fsyncing its directory, which is added to the set for the caller to fsync (once for
    several files) before it counts the file as durable. A failing commit aborts itself."""
    if dirs_to_sync is not None and isinstance(sink, AtomicFile) and sink.durable:
        sink.commit(sync_dir=False)
        dirs_to_sync.add(sink.path.parent)
    else:
        sink.commit()
