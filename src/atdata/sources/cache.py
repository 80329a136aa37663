"""A local shard cache, and checksum verification of shards read over the network.

:class:`ShardCache` is a directory of whole shards downloaded once and read locally (mmapped)
afterwards, so that the second epoch over a remote dataset makes no network request at all.
It is off by default; :meth:`ShardCache.from_setting` turns a user's ``cache=`` argument and the
``ATDATA_CACHE_DIR`` / ``ATDATA_CACHE_MAX_BYTES`` environment variables into one (or None).

- An entry whose sha256 is known is named by it (``sha256-<hex>.shard``): content-addressed,
  so a shard republished under the same URL with a new checksum is a different entry, and the
  same bytes under two URLs are one. An entry is checked against that digest whenever it is
  used, not only when it is filled: its fingerprint (device, inode, size, mtime, ctime) is
  remembered after each verification (:mod:`atdata.sources.memo`, in this process and in a
  per-user file), so an unchanged entry costs one ``stat``; one edited after download, or
  planted under its name in a shared cache directory, is re-hashed, found wrong, deleted and
  downloaded again. Entries without a known digest are keyed by a hash of the URL and trusted.
- A fill downloads to a temporary file in the cache directory, hashing as it goes, fsyncs it
  and renames it into place: readers never see a partial entry, concurrent fills of one shard
  (threads or processes) are harmless. When an expected sha256 is known and the bytes do not
  match it, the download is deleted and :class:`~atdata.errors.IntegrityError` names the shard.
- The cache holds at most ``max_bytes``: after each fill the least recently used entries are
  deleted (a hit refreshes an entry's mtime). A shard larger than the whole cache is not cached.
  An entry deleted while another process has it mapped stays readable to that process.
- Sidecars (``.idx``) are cached beside their shard, absent ones as a marker, so that nothing
  asks the network again.

:class:`CachedSource` wraps any ShardSource with a cache (a shard the cache cannot hold is read
through a :class:`~atdata.sources.verified.VerifyingSource`, never unchecked);
:func:`wrap_source` picks the wrapper a shard needs.
"""

import contextlib
import hashlib
import logging
import os
import re
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .._fs import AtomicFile, atomic_write_bytes
from .._redact import Redacted, redact
from ..errors import AtdataWarning, IntegrityError, InvalidArgumentError, SourceError
from .base import ShardSource, read_exactly
from .memo import Fingerprint, VerifyMemo, default_memo
from .verified import LocalVerifiedSource, VerifyingSource, VerifyingStream

__all__ = [
    "CACHE_DIR_ENV",
    "CACHE_MAX_BYTES_ENV",
    "DEFAULT_MAX_BYTES",
    "CachedSource",
    "LocalVerifiedSource",
    "ShardCache",
    "VerifyingSource",
    "VerifyingStream",
    "checked_sha256",
    "default_cache_dir",
    "wrap_source",
]

CACHE_DIR_ENV = "ATDATA_CACHE_DIR"
CACHE_MAX_BYTES_ENV = "ATDATA_CACHE_MAX_BYTES"
DEFAULT_MAX_BYTES = 50 << 30

_CHUNK = 4 << 20
_log = logging.getLogger(__name__)
_SHARD_EXT = ".shard"
_SIDECAR_EXT = ".side"
_ABSENT_EXT = ".absent"
_TMP_PREFIX = ".fill-"
_STALE_TMP_SECONDS = 24 * 3600
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TOUCH_AFTER_NS = 60 * 10**9
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def default_cache_dir() -> Path:
    """``$ATDATA_CACHE_DIR``, else ``$XDG_CACHE_HOME/atdata/shards`` (``~/.cache/...``)."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "atdata" / "shards"


def _parse_size(text: str) -> int:
    m = _SIZE.match(text)
    if m is None:
        raise InvalidArgumentError(
            f"{CACHE_MAX_BYTES_ENV}={text!r} is not a size like 1000000, 500M or 20G"
        )
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


class ShardCache:
    """A byte-capped LRU directory of whole shards (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int | None = None) -> None:
        if max_bytes is None:
            env = os.environ.get(CACHE_MAX_BYTES_ENV)
            max_bytes = _parse_size(env) if env else DEFAULT_MAX_BYTES
        if max_bytes < 0:
            raise InvalidArgumentError("max_bytes must be >= 0")
        self.directory = Path(directory).expanduser()
        self.max_bytes = max_bytes
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            raise SourceError(f"cannot create the shard cache {self.directory}: {exc}") from exc
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}

    @classmethod
    def from_setting(
        cls, setting: "bool | str | os.PathLike[str] | ShardCache | None" = None
    ) -> "ShardCache | None":
        """The cache a ``cache=`` argument asks for.

        ``None`` (the default): a cache in ``$ATDATA_CACHE_DIR`` when that is set, else none.
        ``False``: none, whatever the environment says. ``True``: :func:`default_cache_dir`.
        A path: a cache there. A ShardCache: itself.
        """
        if isinstance(setting, ShardCache):
            return setting
        if setting is None:
            return cls(default_cache_dir()) if os.environ.get(CACHE_DIR_ENV) else None
        if setting is False:
            return None
        if setting is True:
            return cls(default_cache_dir())
        return cls(setting)

    def __repr__(self) -> str:
        return f"ShardCache({str(self.directory)!r}, max_bytes={self.max_bytes})"

    def __getstate__(self) -> dict[str, Any]:
        return {"directory": self.directory, "max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.directory = state["directory"]
        self.max_bytes = state["max_bytes"]
        self._lock = threading.Lock()
        self._key_locks = {}

    # -- keys and lookups ----------------------------------------------------------------------
    @staticmethod
    def key_for(url: str, expected_sha256: str | None = None) -> str:
        """The entry name: ``sha256-<digest>`` when the digest is known, else a hash of ``url``."""
        if expected_sha256 is not None:
            return "sha256-" + checked_sha256(expected_sha256, url)
        return hashlib.sha256(url.encode()).hexdigest()

    @property
    def memo(self) -> VerifyMemo:
        return default_memo()

    def path_for(self, url: str, expected_sha256: str | None = None) -> Path:
        return self.directory / (self.key_for(url, expected_sha256) + _SHARD_EXT)

    def lookup(self, url: str, expected_sha256: str | None = None) -> Path | None:
        """The cached file of ``url`` (marked as just used), or None."""
        return _touch(self.path_for(url, expected_sha256))

    def get(
        self,
        source: ShardSource,
        expected_sha256: str | None = None,
        *,
        expected_size: int | None = None,
    ) -> Path | None:
        """The cached file of ``source`` (verified when ``expected_sha256`` is given),
        downloading it first if needed.

        None when the shard is larger than the whole cache or the cache cannot store it (a
        warning says why); the caller then reads ``source`` directly.
        """
        path = self.use(source.url, expected_sha256)
        if path is None:
            key = self.key_for(source.url, expected_sha256)
            with self._key_lock(key):
                path = self.use(source.url, expected_sha256)  # another thread filled it
                if path is None:
                    return self._fill(source, key, expected_sha256, expected_size)
        _log.debug("shard cache hit: %s", Redacted(source.url))
        return path

    def use(self, url: str, expected_sha256: str | None = None) -> Path | None:
        """The entry of ``url`` when it is present and (with a digest) still has those bytes.

        An entry whose bytes do not match is deleted (a warning says so) and None returned.
        The entry's mtime is set to now at most once a minute (LRU order).
        """
        path = self.path_for(url, expected_sha256)
        try:
            before = Fingerprint.of(os.stat(path))
        except FileNotFoundError:
            return None
        if expected_sha256 is not None:
            try:
                self.memo.ensure(str(path), expected_sha256, url=url)
            except IntegrityError as exc:
                _unlink(path)
                _log.warning("shard cache: %s failed verification; deleted it", Redacted(url))
                warnings.warn(
                    redact(
                        f"shard cache {self.directory}: the entry of {url} no longer matches "
                        f"its sha256 ({exc.args[0]}); deleted it, downloading the shard again"
                    ),
                    AtdataWarning,
                    stacklevel=3,
                )
                return None
            except SourceError:  # evicted in between
                return None
        if time.time_ns() - before.mtime_ns > _TOUCH_AFTER_NS:
            _touch(path)
            if expected_sha256 is not None:
                self.memo.refresh(str(path), expected_sha256, before)
        return path

    def sidecar(
        self,
        url: str,
        suffix: str,
        fetch: Callable[[], bytes | None],
        expected_sha256: str | None = None,
    ) -> bytes | None:
        """The sidecar ``url + suffix``: cached bytes, a cached absence, or ``fetch()`` stored."""
        text = url + suffix
        if expected_sha256 is not None:
            text += "\n" + checked_sha256(expected_sha256, url)
        key = hashlib.sha256(text.encode()).hexdigest()
        present, absent = (
            self.directory / (key + _SIDECAR_EXT),
            self.directory / (key + _ABSENT_EXT),
        )
        for candidate in (present, absent):
            if _touch(candidate) is not None:
                if candidate is absent:
                    return None
                try:
                    return candidate.read_bytes()
                except FileNotFoundError:  # evicted in between
                    break
        data = fetch()
        try:
            self._store_small(present if data is not None else absent, data or b"")
        except OSError as exc:
            warnings.warn(
                redact(f"shard cache {self.directory}: cannot store {url + suffix}: {exc}"),
                AtdataWarning,
                stacklevel=2,
            )
        return data

    # -- size management -----------------------------------------------------------------------
    def entries(self) -> list[tuple[Path, int, int]]:
        """(path, size, mtime_ns) of every entry, least recently used first."""
        found: list[tuple[Path, int, int]] = []
        now = time.time()
        try:
            scan = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        for entry in scan:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if entry.name.startswith(_TMP_PREFIX):
                if now - st.st_mtime > _STALE_TMP_SECONDS:  # left by a crashed fill
                    _unlink(Path(entry.path))
                continue
            if entry.name.endswith((_SHARD_EXT, _SIDECAR_EXT, _ABSENT_EXT)) and entry.is_file():
                found.append((Path(entry.path), st.st_size, st.st_mtime_ns))
        found.sort(key=lambda e: e[2])
        return found

    def total_bytes(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def evict(self, *, keep: Path | None = None) -> list[Path]:
        """Delete least recently used entries until the cache fits ``max_bytes``."""
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        removed: list[Path] = []
        for path, size, _ in entries:
            if total <= self.max_bytes:
                break
            if keep is not None and path == keep:
                continue
            _unlink(path)
            _log.debug("shard cache %s: evicted %s (%d bytes)", self.directory, path.name, size)
            removed.append(path)
            total -= size
        return removed

    def clear(self) -> None:
        """Delete every entry."""
        for path, _, _ in self.entries():
            _unlink(path)

    # -- internals -----------------------------------------------------------------------------
    def _key_lock(self, key: str) -> threading.Lock:
        with self._lock:
            lock = self._key_locks.get(key)
            if lock is None:
                lock = self._key_locks[key] = threading.Lock()
            return lock

    def _tmp_path(self, key: str) -> Path:
        return self.directory / f"{_TMP_PREFIX}{key}-{os.getpid()}-{secrets.token_hex(4)}"

    def _fill(
        self,
        source: ShardSource,
        key: str,
        expected_sha256: str | None,
        expected_size: int | None = None,
    ) -> Path | None:
        final, url = self.directory / (key + _SHARD_EXT), Redacted(source.url)
        _log.debug("shard cache miss: %s; downloading it", url)
        if expected_size is not None and expected_size > self.max_bytes:
            return None  # larger than the whole cache: read it uncached
        tmp = self._tmp_path(key)
        hasher = hashlib.sha256() if expected_sha256 is not None else None
        size = 0
        out: AtomicFile | None = None
        try:
            with source.open() as stream:
                out = AtomicFile(final, tmp=tmp)
                for chunk in _read_chunks(stream):
                    if size == 0 and expected_size is not None:
                        total = getattr(stream, "total_size", None)
                        if isinstance(total, int) and total != expected_size:
                            raise _SizeMismatch(f"the server says it has {total} bytes")
                    size += len(chunk)
                    if expected_size is not None and size > expected_size:
                        raise _SizeMismatch("it is longer")
                    if size > self.max_bytes:
                        out.abort()
                        return None  # larger than the whole cache: read it uncached
                    if hasher is not None:
                        hasher.update(chunk)
                    out.write(chunk)
            if expected_size is not None and size != expected_size:
                raise IntegrityError(
                    f"the shard ended after {size} bytes; its record says {expected_size}. "
                    "Nothing was cached",
                    shard=source.url,
                )
            if hasher is not None and expected_sha256 is not None:
                digest = hasher.hexdigest()
                if digest != expected_sha256.lower():
                    raise IntegrityError(
                        f"downloaded bytes do not match the recorded sha256 {expected_sha256} "
                        f"(got {digest}, {size} bytes); the download was discarded, not cached",
                        shard=source.url,
                    )
            out.commit()  # fsync, rename into place, fsync of the directory
        except _SizeMismatch as exc:
            _discard(out, tmp)
            raise IntegrityError(
                f"{exc.args[0]} than the {expected_size} bytes its record says; stopped reading "
                "it, nothing was cached",
                shard=source.url,
            ) from None
        except OSError as exc:
            _discard(out, tmp)
            if isinstance(exc, FileNotFoundError) and not self.directory.exists():
                self.directory.mkdir(parents=True, exist_ok=True)
            _log.info("%s: the cache cannot store it, reading it uncached", url)
            warnings.warn(
                redact(
                    f"shard cache {self.directory} cannot store {source.url} ({exc}); "
                    "reading it without the cache"
                ),
                AtdataWarning,
                stacklevel=3,
            )
            return None
        except BaseException:
            _discard(out, tmp)
            raise
        if hasher is not None and expected_sha256 is not None:
            with contextlib.suppress(OSError):  # the bytes just hashed are the entry's
                self.memo.remember(str(final), expected_sha256, Fingerprint.of(os.stat(final)))
        self.evict(keep=final)
        return final

    def _store_small(self, path: Path, data: bytes) -> None:
        atomic_write_bytes(path, data, tmp=self._tmp_path(path.stem))


def _read_chunks(stream: BinaryIO) -> Iterator[bytes | memoryview]:
    """``stream``'s bytes in chunks of up to ``_CHUNK``, each valid until the next is asked for.

    A stream with ``readinto`` fills one reused buffer (no allocation per chunk); others are read.
    """
    readinto = getattr(stream, "readinto", None)
    if readinto is None:
        while chunk := stream.read(_CHUNK):
            yield chunk
        return
    buffer = bytearray(_CHUNK)
    with memoryview(buffer) as view:
        while n := readinto(view):
            yield view[:n]


def _touch(path: Path) -> Path | None:
    """``path`` with its mtime set to now (LRU order), or None when it does not exist."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return None
    except OSError:
        pass  # read-only cache: still usable, just not reordered
    return path


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _discard(out: AtomicFile | None, tmp: Path) -> None:
    """Drop a fill's temporary file, open or not."""
    if out is not None:
        out.abort()
    else:
        _unlink(tmp)


class _SizeMismatch(Exception):
    pass


def checked_sha256(digest: str, url: str) -> str:
    """``digest`` lower-cased when it is 64 hex digits; IntegrityError otherwise (a recorded
    digest names cache files, so anything else is refused rather than used as a name)."""
    if not isinstance(digest, str) or _SHA256.match(digest.lower()) is None:
        raise IntegrityError(f"the recorded sha256 {digest!r:.80} is not 64 hex digits", shard=url)
    return digest.lower()


class CachedSource:
    """A ShardSource that reads ``inner`` through ``cache``.

    ``local_path()`` downloads the shard into the cache on first use (verified against
    ``expected_sha256`` when given) and returns the cached file, so readers mmap it; every later
    use checks that the entry still matches the digest (cheaply, see :class:`ShardCache`). Only
    when the shard cannot be cached (larger than the cache, disk full) are reads passed to
    ``inner``, through a :class:`VerifyingSource` when the digest is known.
    """

    def __init__(
        self,
        inner: ShardSource,
        cache: ShardCache,
        expected_sha256: str | None = None,
        *,
        expected_size: int | None = None,
    ) -> None:
        self.inner = inner
        self.cache = cache
        self.expected_sha256 = (
            checked_sha256(expected_sha256, inner.url) if expected_sha256 is not None else None
        )
        self.expected_size = expected_size
        self.url = inner.url
        self._uncacheable = False
        checks_itself = self.expected_sha256 == getattr(inner, "content_sha256", None)
        self._direct: ShardSource = (
            inner
            if self.expected_sha256 is None or checks_itself  # e.g. an at:// blob and its CID
            else VerifyingSource(inner, self.expected_sha256, expected_size=expected_size)
        )

    def __repr__(self) -> str:
        return f"CachedSource({self.inner!r}, {self.cache!r})"

    def peek_local_path(self) -> str | None:
        """The inner source's local path, without filling the cache (None when remote)."""
        return self.inner.local_path()

    def local_path(self) -> str | None:
        local = self.inner.local_path()
        if local is not None:
            return local
        if self._uncacheable:
            return None
        path = self.cache.get(self.inner, self.expected_sha256, expected_size=self.expected_size)
        if path is None:
            self._uncacheable = True
            return None
        return str(path)

    def open(self) -> BinaryIO:
        for _attempt in range(2):
            path = self.local_path()
            if path is None:
                break
            try:
                return open(path, "rb")
            except FileNotFoundError:  # evicted by another process just now: fetch it again
                continue
        return self._direct.open()

    def read_range(self, start: int, length: int) -> bytes:
        path = self.local_path()
        if path is None:
            return self._direct.read_range(start, length)
        with open(path, "rb") as f:
            f.seek(start)
            return read_exactly(f, self.url, start, length)

    def read_sidecar(self, suffix: str) -> bytes | None:
        if self.inner.local_path() is not None:
            return self.inner.read_sidecar(suffix)
        derive = getattr(self.inner, "derive_sidecar", None)
        if callable(derive):  # built from the shard's bytes: build it from the cached copy
            data: bytes | None = derive(self, suffix)
            return data
        return self.cache.sidecar(
            self.url, suffix, lambda: self.inner.read_sidecar(suffix), self.expected_sha256
        )

    def size(self) -> int:
        path = self.local_path()
        if path is not None:
            return os.path.getsize(path)
        if self.expected_size is not None:
            return self.expected_size
        size = getattr(self.inner, "size", None)
        if size is None:
            raise SourceError(f"{self.url}: its source cannot tell its size")
        return int(size())


def wrap_source(
    source: ShardSource,
    *,
    cache: ShardCache | None = None,
    expected_sha256: str | None = None,
    expected_size: int | None = None,
) -> ShardSource:
    """``source`` wrapped so that it only yields bytes that match its recorded digest.

    The digest is ``expected_sha256``, else the one the source's own name commits to (an
    at:// blob's CID, ``source.content_sha256``). Local files with a digest are verified the
    first time they are used after they changed (:class:`LocalVerifiedSource`); remote ones are
    read through ``cache`` when there is one (verified fill, verified use), else through a
    :class:`VerifyingSource` (verified download before the first byte). Sources without any
    digest are returned as they are (remote ones through ``cache`` when there is one).
    """
    own = getattr(source, "content_sha256", None)
    if expected_sha256 is not None:
        expected_sha256 = checked_sha256(expected_sha256, source.url)
        if isinstance(own, str) and own != expected_sha256:
            raise IntegrityError(
                f"the record says sha256 {expected_sha256}, but the source's own address commits "
                f"to {own}: the record and the shard disagree",
                shard=source.url,
            )
    digest = expected_sha256 or (own if isinstance(own, str) else None)
    if source.local_path() is not None:
        if digest is None:
            return source
        return LocalVerifiedSource(source, digest, expected_size=expected_size)
    if cache is not None:
        return CachedSource(source, cache, digest, expected_size=expected_size)
    if digest is None or digest == own:
        return source  # nothing to check against, or the source checks itself (at:// blobs)
    return VerifyingSource(source, digest, expected_size=expected_size)
