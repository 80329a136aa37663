"""Whole remote shards downloaded to memory or an anonymous temporary file, hashed on the way.

A :class:`SpoolWriter` takes a shard's bytes as they arrive, hashes them, refuses more than a
bound (the recorded size, else ``max_bytes``) and keeps them in memory (a shard read once, up
to :data:`STREAM_IN_MEMORY_BYTES`) or writes them to a temporary file that has no name on disk
(it disappears with its last handle). :meth:`SpoolWriter.finish` gives a
:class:`Spool`: the complete bytes with their sha256, which the caller compares with the
recorded digest *before* handing out a single byte. Readers over a spool are independent
(each has its own position; reads are positioned, so threads may share a spool).

Used wherever a remote shard with a known digest is read without the shard cache: the http(s)
and S3 paths (:class:`~atdata.sources.verified.VerifyingSource`) and at:// blobs.
"""

import hashlib
import io
import os
import tempfile
import threading
import weakref
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterator
from itertools import accumulate
from typing import BinaryIO, Protocol, cast

from ..errors import IntegrityError, InvalidArgumentError, SourceError

__all__ = [
    "DEFAULT_MAX_SPOOL_BYTES",
    "KeepsSpool",
    "MAX_KEPT_SPOOLS",
    "STREAM_IN_MEMORY_BYTES",
    "Spool",
    "SpoolWriter",
    "check_digest",
    "kept_spools",
    "spool_stream",
]

#: The most bytes spooled for a shard whose size is not recorded.
DEFAULT_MAX_SPOOL_BYTES = 64 << 30
#: The most spools kept for random access at once in a process (each is an open file).
MAX_KEPT_SPOOLS = 32
#: A shard read once (a stream) up to this size is spooled in memory, freed when it is closed;
#: larger ones, and those kept for random access, go to a temporary file.
STREAM_IN_MEMORY_BYTES = 128 << 20
_CHUNK = 4 << 20


class Spool:
    """The complete bytes of one download, and their sha256: in memory (``data``) or in an
    unlinked temporary file (``file``)."""

    def __init__(
        self,
        file: BinaryIO | None,
        size: int,
        sha256: str,
        url: str,
        *,
        chunks: list[bytes] | None = None,
    ) -> None:
        self._file = file
        self._chunks = chunks  # in memory: the chunks as received (no copy made to keep them)
        self._starts = list(accumulate((len(c) for c in chunks or ()), initial=0))
        self._closed = False
        self.size = size
        self.sha256 = sha256
        self.url = url
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Spool({self.url!r}, {self.size} bytes)"

    def reader(self, *, owns: bool = False) -> BinaryIO:
        """A new stream over the bytes from the start; ``owns`` closes the spool with it."""
        return cast(BinaryIO, _SpoolReader(self, owns))

    def read_range(self, start: int, length: int) -> bytes:
        if start < 0 or length < 0 or start + length > self.size:
            raise SourceError(
                f"shard {self.url!r} has {self.size} bytes, wanted bytes {start}..{start + length}"
            )
        out = bytearray(length)
        with memoryview(out) as view:
            got = self.pread_into(view, start)
        if got != length:
            raise SourceError(f"shard {self.url!r}: its spooled copy ended early")
        return bytes(out)

    def pread_into(self, view: memoryview, pos: int) -> int:
        """Fill ``view`` from byte ``pos`` (fewer bytes only at the end)."""
        want = min(len(view), max(0, self.size - pos))
        if self._closed:
            raise InvalidArgumentError(f"read from the closed spool of {self.url}")
        if self._file is None:
            return self._copy_chunks(view, pos, want)
        done = 0
        fd = self._file.fileno()
        while done < want:
            if _PREADV is not None:
                n = _PREADV(fd, [view[done:want]], pos + done)
            else:  # no positioned reads on this platform: share the file position under a lock
                with self._lock:
                    self._file.seek(pos + done)
                    n = self._file.readinto(view[done:want])  # type: ignore[attr-defined]
            if not n:
                break
            done += n
        return done

    def _copy_chunks(self, view: memoryview, pos: int, want: int) -> int:
        chunks = self._chunks
        assert chunks is not None
        i = bisect_right(self._starts, pos) - 1
        done = 0
        while done < want:
            chunk = chunks[i]
            at = pos + done - self._starts[i]
            n = min(len(chunk) - at, want - done)
            view[done : done + n] = chunk[at : at + n] if at or n < len(chunk) else chunk
            done += n
            i += 1
        return done

    @property
    def in_memory(self) -> bool:
        return self._file is None

    def close(self) -> None:
        self._closed = True
        self._chunks = None
        if self._file is not None:
            self._file.close()

    @property
    def closed(self) -> bool:
        return self._closed


_PREADV = getattr(os, "preadv", None)


class _SpoolReader(io.RawIOBase):
    def __init__(self, spool: Spool, owns: bool) -> None:
        super().__init__()
        self._spool = spool
        self._owns = owns
        self._pos = 0

    @property
    def total_size(self) -> int:
        return self._spool.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._spool.size}[whence]
        if base + offset < 0:
            raise InvalidArgumentError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        with memoryview(buffer) as view, view.cast("B") as out:
            n = self._spool.pread_into(out, self._pos)
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                if self._owns:
                    self._spool.close()
            finally:
                super().close()


class SpoolWriter:
    """Collects one download into a :class:`Spool`, hashing it and bounding its size.

    ``expected_size`` (the recorded size) is checked as soon as it is exceeded, and at the end;
    without it at most ``max_bytes`` are accepted. Up to ``in_memory`` bytes are kept in memory
    (no file write and read back); a longer download moves to a temporary file.
    """

    def __init__(
        self,
        url: str,
        *,
        expected_size: int | None = None,
        max_bytes: int = DEFAULT_MAX_SPOOL_BYTES,
        in_memory: int = 0,
    ) -> None:
        self.url = url
        self.expected_size = expected_size
        self.max_bytes = max_bytes
        self.in_memory = in_memory
        self._hash = hashlib.sha256()
        self._size = 0
        self._chunks: list[bytes] | None = None
        self._file: BinaryIO | None = None
        if in_memory > 0 and (expected_size is None or expected_size <= in_memory):
            self._chunks = []
        else:
            self._to_file()

    def _to_file(self) -> None:
        self._file = cast(BinaryIO, tempfile.TemporaryFile())  # noqa: SIM115
        if self._chunks is not None:
            for chunk in self._chunks:
                self._file.write(chunk)
            self._chunks = None

    def announce(self, total: int | None) -> None:
        """The size the server says the whole object has: refused at once if it cannot fit."""
        if total is None:
            return
        if self.expected_size is not None and total != self.expected_size:
            self.abort()
            raise IntegrityError(
                f"the server says the shard has {total} bytes; the record says "
                f"{self.expected_size}. Nothing was read from it",
                shard=self.url,
            )
        self._check_bound(total)
        if self._chunks is not None and total > self.in_memory:
            self._to_file()

    def write(self, chunk: "bytes | bytearray | memoryview") -> None:
        """Take ``chunk``; a ``bytes`` chunk may be kept as it is (it must not change)."""
        self._size += len(chunk)
        self._check_bound(self._size)
        self._hash.update(chunk)
        if self._chunks is not None:
            if self._size <= self.in_memory:
                self._chunks.append(chunk if isinstance(chunk, bytes) else bytes(chunk))
                return
            self._to_file()
        assert self._file is not None
        self._file.write(chunk)

    def finish(self) -> Spool:
        if self.expected_size is not None and self._size != self.expected_size:
            self.abort()
            raise IntegrityError(
                f"the shard ended after {self._size} bytes; the record says {self.expected_size}",
                shard=self.url,
            )
        digest = self._hash.hexdigest()
        if self._chunks is not None:
            return Spool(None, self._size, digest, self.url, chunks=self._chunks)
        assert self._file is not None
        self._file.flush()
        return Spool(self._file, self._size, digest, self.url)

    def abort(self) -> None:
        self._chunks = None
        if self._file is not None:
            self._file.close()

    def _check_bound(self, size: int) -> None:
        if self.expected_size is not None and size > self.expected_size:
            self.abort()
            raise IntegrityError(
                f"the shard is longer than the {self.expected_size} bytes its record says; "
                "stopped reading it",
                shard=self.url,
            )
        if size > self.max_bytes:
            self.abort()
            raise SourceError(
                f"shard {self.url} is larger than {self.max_bytes} bytes, the most read "
                "without a recorded size; stopped reading it"
            )


def spool_stream(
    stream: BinaryIO,
    url: str,
    *,
    expected_size: int | None = None,
    max_bytes: int = DEFAULT_MAX_SPOOL_BYTES,
    in_memory: int = 0,
) -> Spool:
    """All of ``stream`` (which is closed) in a Spool; the caller checks ``Spool.sha256``."""
    writer = SpoolWriter(url, expected_size=expected_size, max_bytes=max_bytes, in_memory=in_memory)
    announced = False
    try:
        with stream:
            for chunk in _received(stream):
                if not announced:
                    announced = True
                    total = getattr(stream, "total_size", None)
                    writer.announce(total if isinstance(total, int) else None)
                writer.write(chunk)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


def _received(stream: BinaryIO) -> Iterator[bytes]:
    """``stream``'s bytes as fresh ``bytes`` chunks (kept as they are by an in-memory spool):
    a remote stream's own chunks when it offers them (no copy), else reads of 4 MiB."""
    chunks = getattr(stream, "iter_chunks", None)
    if callable(chunks):
        yield from chunks()
        return
    while chunk := stream.read(_CHUNK):
        yield chunk


def check_digest(spool: Spool, expected_sha256: str) -> Spool:
    """``spool`` when its bytes hash to ``expected_sha256``; else it is discarded, IntegrityError."""
    if spool.sha256 != expected_sha256.lower():
        spool.close()
        raise IntegrityError(
            f"shard bytes do not match the recorded sha256 {expected_sha256.lower()} "
            f"(got {spool.sha256} over {spool.size} bytes); nothing was read from them",
            shard=spool.url,
        )
    return spool


class _Keeper(Protocol):
    def release_kept(self) -> None: ...


class _KeptSpools:
    """The sources holding a spool for random access, least recently used first.

    Past :data:`MAX_KEPT_SPOOLS` the oldest source is told to let its spool go (it downloads
    again if it needs it); the file closes when the last reader over it does. This bounds the
    open files and the disk that random access over many remote shards uses.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._order: OrderedDict[int, weakref.ref[_Keeper]] = OrderedDict()
        self._lock = threading.RLock()  # a collection inside the lock calls _forget

    def used(self, owner: _Keeper) -> None:
        evict: list[_Keeper] = []
        with self._lock:
            key = id(owner)
            if key in self._order:
                self._order.move_to_end(key)
            else:
                self._order[key] = weakref.ref(owner, self._forget)
            while len(self._order) > self.limit:
                _, ref = self._order.popitem(last=False)
                old = ref()
                if old is not None:
                    evict.append(old)
        for old in evict:
            old.release_kept()

    def _forget(self, ref: "weakref.ref[_Keeper]") -> None:
        """An owner was collected: drop its entry (found by its dead reference)."""
        with self._lock:
            for key, value in list(self._order.items()):
                if value is ref:
                    del self._order[key]

    def __len__(self) -> int:
        return len(self._order)


kept_spools = _KeptSpools(MAX_KEPT_SPOOLS)


class KeepsSpool:
    """Mixin for a source that downloads its whole shard once and keeps it for random access,
    bounded process-wide by :data:`kept_spools`. The class sets ``_kept`` (None) and ``_lock``
    and defines ``download`` and ``release_kept``."""

    _kept: Spool | None
    _lock: threading.Lock

    def download(self, *, in_memory: int = 0) -> Spool:
        raise NotImplementedError

    def release_kept(self) -> None:
        raise NotImplementedError

    def _keep(self) -> Spool:
        """The kept spool, downloaded now when there is none (or it was let go)."""
        with self._lock:
            kept = self._kept
            if kept is None or kept.closed:
                kept = self._kept = self.download()
        kept_spools.used(self)
        return kept
