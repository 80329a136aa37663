"""One shard's background half: its sink, its running sha256, its commit and its sidecars.

A :class:`~atdata.shards.writer.ShardWriter` makes one :class:`ShardJob` per shard and runs its
steps on the writer's background thread, in order: :meth:`open` (the sink factory is called
there, after the previous shard was committed), :meth:`write` (bytes to the sink and the hash),
:meth:`finish` (end of archive, commit: fsync and rename, or the upload's completion; then the
offset index and the extra sidecar, each committed whole). Given a ``hasher`` (one worker
thread), each write's sha256 runs there while the same bytes go to the sink on this thread: both
release the GIL, so hashing and writing use two cores. A shard's :class:`ShardInfo` exists
only once the shard and its sidecars are durable and hashed. :meth:`abort` drops the sink: no
partial shard appears under its final name.
"""

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._fs import AtomicFile, fsync_dir
from .info import Checksum, ShardInfo
from .offsets import OFFSETS_SUFFIX, OffsetIndex
from .sink import ShardSink, SinkFactory, commit_sink, write_whole
from .tar import BLOCK

__all__ = ["END_OF_ARCHIVE", "Buffer", "ShardContents", "ShardJob"]

END_OF_ARCHIVE = bytes(2 * BLOCK)
Buffer = bytes | memoryview
"""What a shard job writes: immutable bytes, or a view of a buffer handed over whole."""


@dataclass(slots=True)
class ShardContents:
    """What the producer knows of a finished shard: its members, size and extra sidecar."""

    keys: list[str]
    offsets: list[int]
    sizes: list[int]
    starts: list[int]
    ends: list[int]
    grouped: bool
    size: int
    builder: Any  # a SidecarBuilder or None


class ShardJob:
    """The sink, hash and commit of the shard at ``location`` (see the module docstring)."""

    def __init__(
        self,
        open_sink: SinkFactory,
        location: str,
        done: Callable[[ShardInfo], None],
        hasher: Executor | None = None,
    ) -> None:
        self.open_sink = open_sink
        self.location = location
        self.done = done
        self.hasher = hasher
        self._sink: ShardSink | None = None
        self._hash = hashlib.sha256()

    def open(self) -> None:
        self._sink = self.open_sink(self.location)

    def write(self, pieces: Sequence[Buffer]) -> None:
        """Write ``pieces`` to the sink and the hash; returns once both have all of them (the
        writer counts the pieces against its queue bound until then)."""
        sink = self._sink
        assert sink is not None
        if self.hasher is None:
            for piece in pieces:
                sink.write(piece)
                self._hash.update(piece)
            return
        hashed = self.hasher.submit(self._update, pieces)
        try:
            for piece in pieces:
                sink.write(piece)
        finally:
            hashed.result()  # the hash is done with the pieces before they can be reused

    def _update(self, pieces: Sequence[Buffer]) -> None:
        update = self._hash.update
        for piece in pieces:
            update(piece)

    def abort(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.abort()

    def finish(self, contents: ShardContents) -> None:
        sink = self._sink
        assert sink is not None
        self.write((END_OF_ARCHIVE,))
        digest = self._hash.hexdigest()
        if isinstance(sink, AtomicFile):
            sink.start_writeback()  # the disk works while the sidecars are built
        index = OffsetIndex(
            contents.keys,
            np.asarray(contents.offsets, dtype=np.int64),
            np.asarray(contents.sizes, dtype=np.int64),
            shard_size=contents.size,
            sha256=digest,
            # member layout: version 2, with each key group's span
            starts=np.asarray(contents.starts, dtype=np.int64) if contents.grouped else None,
            ends=np.asarray(contents.ends, dtype=np.int64) if contents.grouped else None,
        ).to_bytes()
        builder = contents.builder
        data = None
        if builder is not None:
            data = builder.finish(size=contents.size, sha256=digest, count=len(contents.keys))
        # a durable local shard and its sidecars are fsynced and renamed one by one, and their
        # directory fsynced once after the last rename, before the shard is reported
        dirs: set[Path] = set()
        commit_sink(sink, dirs)  # a failing commit aborts itself
        self._sink = None
        sidecar = write_whole(
            self.open_sink, sink.location + OFFSETS_SUFFIX, index, dirs_to_sync=dirs
        )
        extra = None
        if builder is not None and data is not None:
            extra = write_whole(
                self.open_sink, sink.location + builder.suffix, data, dirs_to_sync=dirs
            )
        for directory in dirs:
            fsync_dir(directory)
        self.done(
            ShardInfo(
                sink.location,
                Checksum.sha256(digest),
                len(contents.keys),
                contents.size,
                Checksum.sha256(sidecar),
                None if extra is None else Checksum.sha256(extra),
            )
        )
