"""Chunk-verified streaming: a body whose bytes are handed out chunk by chunk, each only after it
hashed to the sha256 recorded for it.

A blob's CID pins all of its bytes, but it can only be checked once the last byte has arrived,
so a reader that never uses an unverified byte must wait for the whole blob. A publisher that
also records the sha256 of every ``chunk_size`` chunk (:class:`ChunkDigests`, 1 MiB by
default) lets a reader stream instead: :class:`ChunkVerifiedStream` runs the download on a
background thread, gathers each chunk, compares its digest with the recorded one and only then
queues it for the consumer (a few chunks ahead, so fetching overlaps parsing). A chunk that
does not match, a body longer or shorter than the recorded chunks, or a whole body that does
not hash to the CID's digest raises :class:`~atdata.errors.IntegrityError` from the read that
would have returned those bytes: no byte of a bad chunk is ever returned.
"""

import base64
import binascii
import hashlib
import io
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..errors import IntegrityError, SourceError

__all__ = [
    "CHUNK_BYTES",
    "MAX_RECORDED_CHUNKS",
    "MAX_STREAM_CHUNK",
    "ChunkDigests",
    "ChunkVerifiedStream",
    "chunk_size_for",
]

#: Default chunk size of published chunk digests.
CHUNK_BYTES = 1 << 20
#: Most chunk digests recorded for one dataset; larger datasets get larger chunks.
MAX_RECORDED_CHUNKS = 4096
#: Largest chunk streamed (each is held in memory until verified); larger ones are not used.
MAX_STREAM_CHUNK = 16 << 20
_MIN_CHUNK = 64 << 10
_MAX_CHUNK = 1 << 30
_DIGEST = 32
_QUEUE_BYTES = 8 << 20  # verified bytes queued ahead of the reader (at least 2 chunks)
_LAG_BYTES = 16 << 20  # most verified bytes held back from the whole-blob hash
_POLL = 0.1


@dataclass(frozen=True)
class ChunkDigests:
    """The sha256 digests of consecutive ``chunk_size``-byte chunks of one blob (the last chunk
    may be shorter); ``digests`` is their concatenation (32 bytes each)."""

    chunk_size: int
    digests: bytes

    def __post_init__(self) -> None:
        size = self.chunk_size
        if not (_MIN_CHUNK <= size <= _MAX_CHUNK) or size & (size - 1):
            raise ValueError(f"chunk size {size} is not a power of two from 64 KiB to 1 GiB")
        if not self.digests or len(self.digests) % _DIGEST:
            raise ValueError("chunk digests must be a non-empty run of 32-byte sha256 digests")

    @property
    def count(self) -> int:
        return len(self.digests) // _DIGEST

    def digest(self, i: int) -> bytes:
        return self.digests[i * _DIGEST : (i + 1) * _DIGEST]

    def fits(self, size: int) -> bool:
        """Whether these digests cover a blob of ``size`` bytes exactly (one per chunk) in chunks
        small enough to stream (at most :data:`MAX_STREAM_CHUNK`)."""
        return (
            size > 0
            and self.chunk_size <= MAX_STREAM_CHUNK
            and self.count == -(-size // self.chunk_size)
        )

    @classmethod
    def of(cls, data: bytes | memoryview, chunk_size: int = CHUNK_BYTES) -> "ChunkDigests":
        view = memoryview(data)
        return cls(
            chunk_size,
            b"".join(
                hashlib.sha256(view[i : i + chunk_size]).digest()
                for i in range(0, max(len(view), 1), chunk_size)
            ),
        )

    def to_text(self) -> str:
        """The digests as base64 text (how records carry them)."""
        return base64.b64encode(self.digests).decode("ascii")

    @classmethod
    def from_text(cls, chunk_size: int, text: str) -> "ChunkDigests":
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ValueError(f"chunk digests are not base64: {exc}") from None
        return cls(chunk_size, raw)


def chunk_size_for(sizes: list[int], *, budget: int = MAX_RECORDED_CHUNKS) -> int | None:
    """The chunk size for blobs of these sizes: :data:`CHUNK_BYTES`, doubled until all of them
    together need at most ``budget`` digests (so that a record stays small); None when that
    would pass :data:`MAX_STREAM_CHUNK` (such datasets are verified blob by blob)."""
    size = CHUNK_BYTES
    while sum(-(-n // size) for n in sizes) > budget:
        size *= 2
        if size > MAX_STREAM_CHUNK:
            return None
    return size


class _Stopped(Exception):
    """The consumer closed the stream: the download ends early."""


Fetch = Callable[[Callable[[bytes], object]], object]
"""Runs a download, handing each piece of the body to the callback it is given."""


class _Claim:
    """Whether a stream started before anyone asked for it (a prefetch) was taken in time."""

    def __init__(self, within: float | None) -> None:
        self._deadline = None if within is None else time.monotonic() + within
        self._state = "open" if within is not None else "taken"
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Take the stream: False when its time ran out (it stopped; open another)."""
        with self._lock:
            self._check()
            if self._state == "expired":
                return False
            self._state = "taken"
            return True

    def expired(self) -> bool:
        with self._lock:
            self._check()
            return self._state == "expired"

    def _check(self) -> None:
        late = self._deadline is not None and time.monotonic() > self._deadline
        if self._state == "open" and late:
            self._state = "expired"


class ChunkVerifiedStream(io.RawIOBase):
    """The body ``fetch`` downloads, handed out only in chunks verified against ``chunks``.

    ``whole_sha256`` (hex) is the digest the whole body must have (checked after the last
    chunk, before end-of-stream is returned). With ``claim_within`` the stream is a prefetch:
    it must be taken with :meth:`claim` within that many seconds, else its download stops (and
    its queued chunks are let go) when it next waits for the reader.
    """

    #: the download runs ahead of the reader on its own thread (read_ahead adds no other)
    reads_ahead = True

    def __init__(
        self,
        fetch: Fetch,
        chunks: ChunkDigests,
        whole_sha256: str,
        url: str,
        *,
        claim_within: float | None = None,
    ) -> None:
        super().__init__()
        self.url = url
        self._chunks = chunks
        self._whole = whole_sha256.lower()
        self._queue: queue.Queue[memoryview | BaseException | None] = queue.Queue(
            max(2, _QUEUE_BYTES // chunks.chunk_size)
        )
        self._stop = threading.Event()
        self._current = memoryview(b"")
        self._done = False
        # the thread holds the producer, not this stream: a stream dropped without close() is
        # collected, and closing it (IOBase.__del__) stops the download
        self._claim = _Claim(claim_within)
        producer = _Producer(chunks, self._whole, url, self._queue, self._stop, claim=self._claim)
        self._thread = threading.Thread(
            target=producer.run, args=(fetch,), name="atdata-chunk-verify", daemon=True
        )
        self._thread.start()

    def claim(self) -> bool:
        """Take a prefetched stream for reading: False (and closed) when it waited too long."""
        if self._claim.take():
            return True
        self.close()
        return False

    def readable(self) -> bool:
        return True

    def ready(self) -> bool:
        """Whether a read would return (bytes, the end or an error) without waiting."""
        return bool(len(self._current)) or self._done or not self._queue.empty()

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        with memoryview(buffer) as view, view.cast("B") as out:
            if not len(out):
                return 0
            while not len(self._current):
                item = self._next()
                if item is None:
                    return 0
                self._current = item
            n = min(len(out), len(self._current))
            out[:n] = self._current[:n]
            self._current = self._current[n:]
            return n

    def _next(self) -> memoryview | None:
        """The next verified chunk (None at the end); raises what the download raised."""
        if self._done:
            return None
        item = self._queue.get()
        if item is None or isinstance(item, BaseException):
            self._done = True
        if isinstance(item, BaseException):
            raise item
        return item

    def iter_chunks(self) -> Iterator[memoryview]:
        """The remaining bytes as the verified chunks themselves (no copy; what
        :class:`~atdata.net.readahead.ReadAhead` relays)."""
        if len(self._current):
            rest, self._current = self._current, memoryview(b"")
            yield rest
        while (item := self._next()) is not None:
            yield item

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            try:  # unblock the producer if it waits on a full queue
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            super().close()


class _Producer:
    """The download thread's side: verify chunks and queue them (or the error) for the reader."""

    def __init__(
        self,
        chunks: ChunkDigests,
        whole_sha256: str,
        url: str,
        out: "queue.Queue[memoryview | BaseException | None]",
        stop: threading.Event,
        *,
        claim: _Claim,
    ) -> None:
        self._chunks = chunks
        self._whole = whole_sha256
        self.url = url
        self._queue = out
        self._stop = stop
        self._claim = claim

    def _put(
        self, item: memoryview | BaseException | None, idle: Callable[[], object] | None = None
    ) -> None:
        """Queue ``item`` for the reader; while the queue is full, ``idle()`` runs first."""
        if idle is not None:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                idle()
        while not self._stop.is_set() and not self._claim.expired():
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue
        raise _Stopped

    def run(self, fetch: Fetch) -> None:
        chunks = self._chunks
        size = chunks.chunk_size
        whole = hashlib.sha256()
        unhashed: list[memoryview] = []  # verified chunks not yet in the whole-blob hash
        parts: list[bytes] = []  # the pieces of the chunk being gathered
        have = 0
        index = 0

        def emit(chunk: memoryview) -> None:
            nonlocal index
            if index >= chunks.count:
                raise IntegrityError(
                    f"the blob is longer than its {chunks.count} recorded chunks", shard=self.url
                )
            got = hashlib.sha256(chunk).digest()
            if got != chunks.digest(index):
                raise IntegrityError(
                    f"chunk {index} (bytes {index * size}..{index * size + len(chunk)}) hashes to "
                    f"{got.hex()}, but the record says {chunks.digest(index).hex()}; the data "
                    "was corrupted or tampered with",
                    shard=self.url,
                )
            index += 1
            # the whole-blob hash is off the reader's path: it runs while the reader is behind
            # (the queue is full), or once _LAG_BYTES wait for it, or at the end
            unhashed.append(chunk)
            if len(unhashed) * size > _LAG_BYTES:
                catch_up()
            self._put(chunk, catch_up)

        def catch_up() -> None:
            for view in unhashed:
                whole.update(view)
            unhashed.clear()

        def on_piece(piece: bytes) -> None:
            nonlocal parts, have
            if self._stop.is_set():
                raise _Stopped
            parts.append(piece)
            have += len(piece)
            if have < size:
                return
            data = memoryview(b"".join(parts))  # one copy; the chunks are views of it
            off = 0
            while len(data) - off >= size:
                emit(data[off : off + size])
                off += size
            parts = [bytes(data[off:])] if off < len(data) else []
            have = len(data) - off

        try:
            fetch(on_piece)
            if have:
                emit(memoryview(b"".join(parts)))
            catch_up()
            if index != chunks.count:
                raise IntegrityError(
                    f"the blob ended after {index} of its {chunks.count} recorded chunks",
                    shard=self.url,
                )
            if whole.hexdigest() != self._whole:
                raise IntegrityError(
                    f"the blob's chunks match its record, but the whole blob hashes to "
                    f"{whole.hexdigest()}, not the {self._whole} its CID commits to",
                    shard=self.url,
                )
            self._put(None)
        except _Stopped:
            if self._claim.expired():  # nobody took the prefetch: let its chunks go
                try:
                    while True:
                        self._queue.get_nowait()
                except queue.Empty:
                    pass
            return
        except (SourceError, IntegrityError, OSError) as exc:
            try:
                self._put(exc)
            except _Stopped:
                return
        except BaseException as exc:
            try:
                self._put(SourceError(f"reading {self.url}: {type(exc).__name__}: {exc}"))
            except _Stopped:
                return
