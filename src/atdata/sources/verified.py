"""Sources that hand out only bytes that match a shard's recorded sha256.

- :class:`VerifyingSource`: a remote shard read without the shard cache. ``open()`` downloads
  the whole shard into an unlinked temporary file (a :class:`~atdata.sources.spool.Spool`),
  (in memory up to 128 MiB) hashing it and bounding it by the recorded size, and compares the
  digest *before* the first
  byte is returned; a tampered shard therefore yields no sample at all, however the tar reader
  would have stopped. Range reads (``ds[i]``) are served from one such verified spool, kept
  for the source's lifetime (on disk, not in memory).
- :class:`LocalVerifiedSource`: a local shard, hashed the first time it is used after it changed
  (device, inode, size, mtime or ctime differ from the last verification, remembered across
  processes by :mod:`atdata.sources.memo`).
- :class:`VerifyingStream`: a stream hashed as it is read and judged at its end (kept for
  callers that stream a whole object and can act on an error at the end).
"""

import hashlib
import io
import logging
import os
import threading
from typing import Any, BinaryIO

from .._redact import Redacted
from ..errors import IntegrityError, InvalidArgumentError
from .base import ShardSource
from .memo import VerifyMemo, default_memo
from .spool import (
    DEFAULT_MAX_SPOOL_BYTES,
    STREAM_IN_MEMORY_BYTES,
    KeepsSpool,
    Spool,
    check_digest,
    spool_stream,
)

__all__ = ["LocalVerifiedSource", "VerifyingSource", "VerifyingStream"]

_log = logging.getLogger(__name__)


class VerifyingSource(KeepsSpool):
    """``inner`` (remote) whose bytes are only handed out once they match ``expected_sha256``."""

    def __init__(
        self,
        inner: ShardSource,
        expected_sha256: str,
        *,
        expected_size: int | None = None,
        max_bytes: int = DEFAULT_MAX_SPOOL_BYTES,
    ) -> None:
        self.inner = inner
        self.expected_sha256 = expected_sha256.lower()
        self.expected_size = expected_size
        self.max_bytes = max_bytes
        self.url = inner.url
        self._kept: Spool | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VerifyingSource({self.inner!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_kept"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def download(self, *, in_memory: int = 0) -> Spool:
        """The whole shard, verified, in a new spool (the caller closes it)."""
        spool = spool_stream(
            self.inner.open(),
            self.url,
            expected_size=self.expected_size,
            max_bytes=self.max_bytes,
            in_memory=in_memory,
        )
        return check_digest(spool, self.expected_sha256)

    def release_kept(self) -> None:
        """Let the kept spool go (closed once no reader uses it)."""
        self._kept = None

    def local_path(self) -> str | None:
        return None

    def open(self) -> BinaryIO:
        kept = self._kept
        if kept is not None and not kept.closed:
            return kept.reader()
        return self.download(in_memory=STREAM_IN_MEMORY_BYTES).reader(owns=True)

    def read_range(self, start: int, length: int) -> bytes:
        return self._keep().read_range(start, length)

    def read_sidecar(self, suffix: str) -> bytes | None:
        return self.inner.read_sidecar(suffix)

    def size(self) -> int:
        if self.expected_size is not None:
            return self.expected_size
        return self._keep().size


class LocalVerifiedSource:
    """A local shard checked against ``expected_sha256`` whenever it is used after a change."""

    def __init__(
        self,
        inner: ShardSource,
        expected_sha256: str,
        *,
        expected_size: int | None = None,
        memo: VerifyMemo | None = None,
    ) -> None:
        path = inner.local_path()
        if path is None:
            raise InvalidArgumentError(f"{inner.url} is not a local file")
        self.inner = inner
        self.path = path
        self.expected_sha256 = expected_sha256.lower()
        self.expected_size = expected_size
        self.url = inner.url
        self._memo = memo

    def __repr__(self) -> str:
        return f"LocalVerifiedSource({self.inner!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_memo"] = None  # a worker uses its own process's memo
        return state

    def verify(self) -> None:
        memo = self._memo if self._memo is not None else default_memo()
        memo.ensure(self.path, self.expected_sha256, url=self.url, expected_size=self.expected_size)

    def local_path(self) -> str | None:
        self.verify()
        return self.path

    def peek_local_path(self) -> str | None:
        """Where the file lies, without verifying it (for size checks that read no content)."""
        return self.path

    def open(self) -> BinaryIO:
        self.verify()
        return self.inner.open()

    def read_range(self, start: int, length: int) -> bytes:
        self.verify()
        return self.inner.read_range(start, length)

    def read_sidecar(self, suffix: str) -> bytes | None:
        return self.inner.read_sidecar(suffix)

    def size(self) -> int:
        return os.path.getsize(self.path)


class VerifyingStream(io.RawIOBase):
    """Reads ``stream`` while hashing it; IntegrityError once the last byte is read, on mismatch.

    The end is known from ``expected_size``, or the inner stream's ``total_size`` (remote
    streams tell it), or a read returning b"". The error is raised from that read, so a reader
    sees it before it finishes the shard; a stream closed before its end is not judged. Seeking
    is refused, so a reader that wants to skip ahead reads through the hash instead.
    """

    def __init__(
        self,
        stream: BinaryIO,
        expected_sha256: str,
        url: str,
        *,
        expected_size: int | None = None,
    ) -> None:
        super().__init__()
        self._inner = stream
        self._expected = expected_sha256.lower()
        self.url = url
        self._expected_size = expected_size
        self._hash = hashlib.sha256()
        self._pos = 0
        self._checked = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    @property
    def total_size(self) -> int | None:
        if self._expected_size is not None:
            return self._expected_size
        size = getattr(self._inner, "total_size", None)
        return size if isinstance(size, int) else None

    def read(self, size: int | None = -1) -> bytes:
        data = self._inner.read(-1 if size is None else size)
        if data:
            self._hash.update(data)
            self._pos += len(data)
            total = self.total_size
            if total is not None and self._pos >= total:
                self._check()
        elif size != 0:
            self._check()
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        inner = getattr(self._inner, "readinto", None)
        with memoryview(buffer) as view, view.cast("B") as out:
            if inner is None:
                data = self.read(len(out))
                out[: len(data)] = data
                return len(data)
            n: int = inner(out)
            if n:
                self._hash.update(out[:n])
                self._pos += n
                total = self.total_size
                if total is not None and self._pos >= total:
                    self._check()
            elif len(out):
                self._check()
            return n

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                super().close()

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        digest = self._hash.hexdigest()
        if digest != self._expected:
            _log.warning(
                "%s failed verification: sha256 %s over %d bytes, its record says %s",
                Redacted(self.url),
                digest,
                self._pos,
                self._expected,
            )
            raise IntegrityError(
                f"shard bytes do not match the recorded sha256 {self._expected} "
                f"(got {digest} over {self._pos} bytes)",
                shard=self.url,
            )
        _log.debug("%s verified: sha256 matches its record", Redacted(self.url))
