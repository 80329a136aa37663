"""Writing samples into WebDataset tar shards, with rollover, checksums and offset indexes.

Output is deterministic: keys come from a caller-chosen field or a zero-padded running index,
and tar headers carry fixed metadata, so writing the same samples twice gives identical bytes.
Each shard is written through a :class:`~atdata.shards.sink.ShardSink` (atomic: it appears
whole or not at all), hashed with sha256 as it is written, and gets an offset-index sidecar.
"""

import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import islice
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

import msgpack
import numpy as np

from ..codec import Codec, codec_for, encode_array
from ..codec_batch import BatchEncoder, batch_encoder
from ..errors import InvalidArgumentError, SchemaError
from ..media.image import Image
from ..members import MemberLayout, encode_members, member_layout
from ..sample import DictSample
from .background import Background, Task
from .info import ShardInfo
from .shard_job import END_OF_ARCHIVE, Buffer, ShardContents, ShardJob
from .sink import LocalFileSink, SinkFactory
from .tar import BLOCK, MAX_NAME, encode_header, padding
from .tar_batch import MemberAppender

__all__ = ["Layout", "ShardWriter", "SidecarBuilder"]

T = TypeVar("T")
_SUFFIX = b".msgpack"
_KEY_CHARS = re.compile(r"^[A-Za-z0-9_\-:@+=,~]+$")
_LARGE_BODY = 1 << 16  # bodies from this size on are handed to the sink as they are, not copied
_BATCH = 1 << 20  # bytes staged before they go to the background thread
_CHUNK = 256  # samples ``write_all`` encodes together on its fast path, at most ...
_CHUNK_BYTES = 256 << 10  # ... and about this many bytes of them (it reads this far ahead)
_MISSES = 4  # chunks that needed the per-sample path before the fast path is given up
_END = object()  # what ``next`` gives at the end of the input
Layout = Literal["msgpack", "members"]
Members = list[tuple[str, bytes]]


class SidecarBuilder(Protocol):
    """Builds one extra sidecar per shard from the samples written into it (e.g. a manifest)."""

    suffix: str

    def add(self, sample: Any) -> None:
        """One sample was appended to the open shard."""

    def finish(self, *, size: int, sha256: str, count: int) -> bytes | None:
        """The open shard is complete: the sidecar's bytes (None: write none); then reset."""


def _default_hook(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return encode_array(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Image):
        return value.data  # an encoded image in a schema-free sample: its bytes
    raise TypeError(f"cannot serialize {type(value).__name__}")


class ShardWriter(Generic[T]):
    """Write samples to ``pattern % shard_number`` shards, rolling over by count and size.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with ShardWriter(os.path.join(d, "x-%06d.tar"), maxcount=2) as w:
    ...     for i in range(3):
    ...         w.write(DictSample(i=i))
    >>> [s.count for s in w.shards]
    [2, 1]

    The layout follows the sample type: one ``<key>.msgpack`` member per sample, or, for types
    declared with :func:`atdata.member`, one member per field (``<key>.jpg``, ``<key>.cls``,
    ...) that WebDataset tools read with their own decoders. ``layout="members"`` writes dicts
    and DictSamples that way too, each key of the sample being a member's extension.

    Keys are the value of ``key_field`` or else the writer's running sample number (eight
    digits), after ``key_prefix`` when one is given (derives use it to keep keys unique across
    the tasks of a dataset).

    Sinks are opened, written and committed (fsync and rename, or an upload) on a background
    thread, and hashed on a second one as the bytes are written, fed by a queue that holds at
    most ``max_queued_bytes``: ``write`` blocks while it is full. A failure there (a full disk, a refused upload) is raised by the next
    ``write`` or by ``close``, with a note naming the shard; that shard never appears under its
    final name, and :attr:`shards` lists only shards that are committed with their sidecars
    (all of them once ``close`` returned).

    ``durable=False`` (local files only, so not with ``sink_factory``): shards and sidecars are
    still renamed into place whole, but never fsynced, for scratch output that may be lost in a
    power loss. By default each shard is fsynced before its rename, its writeback started while
    it is written.
    """

    def __init__(
        self,
        pattern: str,
        *,
        maxcount: int = 10_000,
        maxsize: int | None = None,
        key_field: str | None = None,
        key_prefix: str = "",
        sink_factory: SinkFactory | None = None,
        start_shard: int = 0,
        sidecar_builder: "Callable[[], SidecarBuilder | None] | None" = None,
        layout: Layout | None = None,
        max_queued_bytes: int = 64 << 20,
        durable: bool = True,
    ) -> None:
        if layout not in (None, "msgpack", "members"):
            raise InvalidArgumentError(f"layout must be 'msgpack' or 'members', not {layout!r}")
        if maxcount < 1:
            raise InvalidArgumentError("maxcount must be at least 1")
        if not durable and sink_factory is not None:
            raise InvalidArgumentError(
                "durable=False applies to local files: a sink_factory's sinks decide for themselves"
            )
        if max_queued_bytes < 1:
            raise InvalidArgumentError("max_queued_bytes must be at least 1")
        if maxsize is not None and maxsize < BLOCK * 4:
            raise InvalidArgumentError("maxsize is too small to hold any sample")
        try:
            pattern % 0
        except TypeError:
            raise InvalidArgumentError(
                f"shard pattern {pattern!r} needs one %d-style placeholder, e.g. 'x-%06d.tar'"
            ) from None
        if key_prefix and (key_field is not None or not _KEY_CHARS.match(key_prefix)):
            raise InvalidArgumentError(
                f"key_prefix {key_prefix!r} needs no key_field and only the key characters "
                "letters, digits and _-:@+=,~"
            )
        if len(key_prefix) + 8 + len(_SUFFIX) > MAX_NAME:
            raise InvalidArgumentError(f"key_prefix {key_prefix!r} is too long")
        if "\x00" in pattern:
            raise InvalidArgumentError(f"shard pattern {pattern!r} contains a NUL character")
        self.pattern = pattern
        self.maxcount = maxcount
        self.maxsize = maxsize
        self.key_field = key_field
        self.key_prefix = key_prefix
        self.layout = layout
        self._members: MemberLayout | None = None
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._grouped = False
        self._sink_factory: SinkFactory = sink_factory or partial(LocalFileSink, durable=durable)
        self._shard_number = start_shard
        self._sample_number = 0
        self._codec: Codec[Any] | None = None
        self._batch: BatchEncoder | None = None
        self._chunk = 1
        self._misses = 0
        self._appender = MemberAppender()
        self._sample_type: type | None = None
        self._packer = msgpack.Packer(use_bin_type=True, default=_default_hook)
        self._job: ShardJob | None = None
        self._background = Background(max_bytes=max_queued_bytes)
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="atdata-shard-hash")
        self._small = bytearray()
        self._pieces: list[Buffer] = []
        self._staged = 0
        self._pos = 0
        self._keys: list[str] = []
        self._offsets: list[int] = []
        self._sizes: list[int] = []
        self._seen: set[str] = set()
        self.shards: list[ShardInfo] = []
        self._closed = False
        self._builder_factory = sidecar_builder
        self._builder: SidecarBuilder | None = None

    # -- public -------------------------------------------------------------------------------
    def write(self, sample: T) -> str:
        """Append one sample; returns its key."""
        if self._closed:
            raise InvalidArgumentError("this ShardWriter is closed")
        if self._background.error is not None:
            raise self._background.error
        body = self._encode(sample)
        key = self._key_for(sample)
        self._append(key, body)
        if self._builder is not None:
            self._builder.add(sample)
        return key

    def write_all(self, samples: Iterable[T]) -> None:
        """``write`` each sample, in order. Runs of small flat samples (scalars and small arrays,
        one ``.msgpack`` member each) are encoded a chunk at a time: the same bytes, less Python
        per sample."""
        it = iter(samples)
        for sample in it:
            self.write(sample)  # the first one fixes the sample type (and the fast path)
            if (
                self._batch is not None
                and self.maxsize is None
                and self.key_field is None
                and self._sizes
            ):
                self._chunk = _chunk_for(self._sizes[-1])
                self._write_chunks(it)
                return

    def _write_chunks(self, it: Iterator[T]) -> None:
        while True:
            if self._batch is None:  # given up: one sample at a time, no reading ahead
                for sample in it:
                    self.write(sample)
                return
            if self._job is None or len(self._keys) >= self.maxcount:
                # A new shard: its first sample is written alone, as soon as it arrives, so the
                # shard before it is committed then, not once a whole chunk has been read (a
                # producer may wait for that shard before it yields more).
                first = next(it, _END)
                if first is _END:
                    return
                self.write(cast(T, first))
                continue
            room = self.maxcount - len(self._keys)
            chunk: list[T] = []
            try:
                chunk.extend(islice(it, min(room, self._chunk)))
            finally:  # the samples taken before the input failed are still written
                if chunk and not self._write_chunk(chunk):
                    for sample in chunk:
                        self.write(sample)
            if not chunk:
                return

    def _write_chunk(self, chunk: list[T]) -> bool:
        """Append ``chunk`` (no more samples than the open shard has room for, or than a new
        shard holds) on the fast path; False, having changed nothing, where a sample needs
        :meth:`write` (another type, a conversion, an error to raise at its own sample)."""
        if self._closed or self._background.error is not None:
            return False
        batch = self._batch
        if batch is None or self.key_field is not None or self._sample_type is None:
            return False
        if any(type(sample) is not self._sample_type for sample in chunk):
            return False
        bodies = batch.encode(chunk)
        biggest = -1 if bodies is None else max(map(len, bodies))
        if bodies is None or biggest >= _LARGE_BODY:
            self._misses += 1
            if self._misses >= _MISSES or biggest >= _LARGE_BODY:
                self._batch = None  # not a stream of small flat samples: read no more ahead
            return False
        self._chunk = _chunk_for(biggest)
        first = self._sample_number
        keys = [f"{self.key_prefix}{n:08d}" for n in range(first, first + len(chunk))]
        names = [key.encode() + _SUFFIX for key in keys]
        if any(len(name) > MAX_NAME for name in names):
            return False
        if self._job is not None and len(self._keys) >= self.maxcount:
            self._finish_shard()
        if self._job is None:
            self._open_shard()
        small = self._small
        start = len(small)
        sizes = self._appender.append(small, names, bodies)
        pos = self._pos
        offsets = self._offsets
        ends = self._ends
        for n in sizes:
            offsets.append(pos)
            pos += BLOCK + n + (-n) % BLOCK
            ends.append(pos)
        self._starts.extend(offsets[len(offsets) - len(sizes) :])
        self._keys.extend(keys)
        self._sizes.extend(sizes)
        self._sample_number = first + len(chunk)
        self._pos = pos
        self._staged += len(small) - start
        if self._staged >= _BATCH:
            self._submit_pieces()
        builder = self._builder
        if builder is not None:
            add_many = getattr(builder, "add_many", None)
            if add_many is not None:
                add_many(chunk)
            else:
                for sample in chunk:
                    builder.add(sample)
        return True

    def close(self) -> list[ShardInfo]:
        """Finish the open shard and wait until every shard is committed; returns them all.

        Raises the first error of the background thread (the failed shard is not committed)."""
        if not self._closed:
            self._closed = True
            try:
                self._finish_shard()
            except BaseException:
                self._background.cancel()
                self._hasher.shutdown()
                raise
        try:
            self._background.drain()
        finally:
            self._hasher.shutdown()
        return self.shards

    def abort(self) -> None:
        """Discard the open shard (finished shards stay: their commits are waited for)."""
        self._closed = True
        job, self._job = self._job, None
        open_job = job.location if job is not None else None
        self._background.cancel(keep=lambda task: task.where != open_job)
        self._hasher.shutdown()
        if job is not None:
            job.abort()

    def __enter__(self) -> "ShardWriter[T]":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- internals ----------------------------------------------------------------------------
    def _encode(self, sample: Any) -> bytes | list[bytes] | Members:
        cls = type(sample)
        if cls is not self._sample_type:
            if self._sample_type is not None:
                raise SchemaError(
                    f"one writer holds one sample type: got {cls.__name__} after {self._sample_type.__name__}"
                )
            self._sample_type = cls
            if cls is DictSample or cls is dict:
                self._codec = None
            else:
                self._codec = codec_for(cls)
                self._members = member_layout(cls)
                if self._members is None and self.layout != "members":
                    self._batch = batch_encoder(self._codec)
                if self.layout == "msgpack" and self._members is not None:
                    raise InvalidArgumentError(
                        f"{cls.__name__} declares member fields (atdata.member): it is written "
                        "in member layout"
                    )
                if self.layout == "members" and self._members is None:
                    raise InvalidArgumentError(
                        f"{cls.__name__} is a msgpack sample type: declare its fields with "
                        "atdata.member(...) to write it in member layout"
                    )
        if self._members is not None:
            return self._members.encode(sample)
        if self._codec is None and self.layout == "members":
            data = sample.to_dict() if isinstance(sample, DictSample) else sample
            return encode_members(data)
        if self._codec is None:
            data = sample.to_dict() if isinstance(sample, DictSample) else sample
            try:
                body: bytes = self._packer.pack(data)
            except (TypeError, ValueError, OverflowError) as exc:
                raise SchemaError(f"cannot serialize sample {self._sample_number}: {exc}") from exc
            return body
        return self._codec.encode_parts(sample)

    def _key_for(self, sample: Any) -> str:
        if self.key_field is None:
            key = f"{self.key_prefix}{self._sample_number:08d}"
        else:
            value = (
                sample[self.key_field]
                if isinstance(sample, dict | DictSample)
                else getattr(sample, self.key_field)
            )
            key = str(value)
            if not _KEY_CHARS.match(key) or len(key) + len(_SUFFIX) > MAX_NAME:
                raise SchemaError(
                    f"key field {self.key_field!r} value {key!r} cannot be a sample key: use letters, "
                    f"digits and _-:@+=,~ only (no '.' or '/'), at most {MAX_NAME - len(_SUFFIX)} chars",
                    path=f"$.{self.key_field}",
                )
        self._sample_number += 1
        return key

    def _shard_location(self) -> str:
        return self.pattern % self._shard_number

    def _append(self, key: str, body: bytes | list[bytes] | Members) -> None:
        parts: list[tuple[str, list[Buffer]]]
        if isinstance(body, bytes):
            parts = [("msgpack", [body])]
        elif body and isinstance(body[0], tuple):
            self._grouped = True
            parts = [(ext, [data]) for ext, data in body]
            for ext, _data in parts:
                if len(key) + 1 + len(ext) > MAX_NAME:
                    raise SchemaError(
                        f"member name {key}.{ext} is longer than a tar name ({MAX_NAME} bytes)"
                    )
        elif body:
            body_parts: list[Buffer] = [*cast(list[bytes], body)]
            parts = [("msgpack", body_parts)]
        else:
            raise SchemaError(f"sample {key!r} has no members to write")
        lengths = [sum(len(d) for d in datas) for _e, datas in parts]
        member_size = sum(BLOCK + n + (-n) % BLOCK for n in lengths)
        if self._job is not None and (
            len(self._keys) >= self.maxcount
            or (self.maxsize is not None and self._pos + member_size + 2 * BLOCK > self.maxsize)
        ):
            self._finish_shard()
        if self._job is None:
            self._open_shard()
        if self.key_field is not None:  # checked here: a rollover above starts a new key set
            if key in self._seen:
                raise SchemaError(
                    f"duplicate sample key {key!r} in shard {self._shard_location()}",
                    path=f"$.{self.key_field}",
                )
            self._seen.add(key)
        small, pieces = self._small, self._pieces
        for (ext, datas), n in zip(parts, lengths, strict=True):
            small += encode_header(f"{key}.{ext}".encode(), n)
            for data in datas:
                if len(data) < _LARGE_BODY:
                    small += data
                else:  # handed on as it is: an immutable buffer the encoder made for us
                    if small:
                        pieces.append(memoryview(small))
                        small = bytearray()
                    pieces.append(data)
            small += padding(n)
        self._small = small
        self._staged += member_size
        if self._staged >= _BATCH:
            self._submit_pieces()
        self._keys.append(key)
        self._offsets.append(self._pos)
        self._sizes.append(lengths[0])
        self._starts.append(self._pos)
        self._pos += member_size
        self._ends.append(self._pos)

    def _submit_pieces(self) -> None:
        if self._small:
            self._pieces.append(memoryview(self._small))
            self._small = bytearray()
        pieces, self._pieces, staged, self._staged = self._pieces, [], self._staged, 0
        if pieces:
            job = self._job
            assert job is not None
            self._background.submit(
                Task(partial(job.write, pieces), job.location, staged, job.abort)
            )

    def _open_shard(self) -> None:
        job = ShardJob(self._sink_factory, self._shard_location(), self.shards.append, self._hasher)
        self._background.submit(Task(job.open, job.location, 0, job.abort))
        self._job = job
        self._pos = 0
        self._keys, self._offsets, self._sizes = [], [], []
        self._starts, self._ends = [], []
        self._seen = set()
        self._builder = self._builder_factory() if self._builder_factory is not None else None

    def _finish_shard(self) -> None:
        job = self._job
        if job is None:
            return
        self._submit_pieces()
        self._job = None
        contents = ShardContents(
            self._keys,
            self._offsets,
            self._sizes,
            self._starts,
            self._ends,
            self._grouped,
            self._pos + len(END_OF_ARCHIVE),
            self._builder,
        )
        self._builder = None
        self._background.submit(Task(partial(job.finish, contents), job.location, 0, job.abort))
        self._shard_number += 1


def _chunk_for(body_size: int) -> int:
    """Samples per fast-path chunk after bodies of up to ``body_size`` bytes."""
    return max(1, min(_CHUNK, _CHUNK_BYTES // (body_size + BLOCK)))
