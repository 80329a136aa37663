"""Offset indexes built by scanning a shard with no sidecar, kept for the next open.

A shard without a usable ``.idx`` sidecar (WebDataset shards made by other tools, atdata 0.7
shards) is scanned once to count and locate its samples. The result is kept under
``$ATDATA_HOME/offsets/`` (default ``~/.atdata/offsets``), never beside the shard: the shard's
directory may be read-only, shared or remote, and a file next to a user's data would be a
surprise. An entry names what it describes and is used only if that still holds:

- a local file (or a cached download): its real path, size, mtime, ctime, inode and device, so
  any rewrite of the shard (even to the same size) gives a rescan;
- a remote shard: only when its sha256 is recorded (an index entry), keyed by that digest.

At most 4096 entries are kept (the oldest quarter goes when there are more).

A cached index is still only a map: every read checks the headers it points at, and a read that
finds it wrong drops it (:func:`forget`) and scans again. Failing to write the cache (read-only
home, full disk) only costs a scan next time.
"""

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import msgpack

from ..errors import ShardError
from ..sources import ShardSource
from .offsets import MAX_SIDECAR_BYTES, OffsetIndex

__all__ = ["forget", "load", "save"]

_FORMAT = "atdata.scan-cache"
_MAX_ENTRIES = 4096  # past this many, the least recently written quarter is removed


def _directory() -> Path:
    return Path(os.environ.get("ATDATA_HOME") or "~/.atdata").expanduser() / "offsets"


def _identity(path: str | None, sha256: str | None) -> tuple[str, dict[str, Any]] | None:
    """(cache file name, what the entry must match) for a shard, or None (not cacheable)."""
    if path is not None:
        try:
            real = os.path.realpath(path)
            st = os.stat(real)
        except OSError:
            return None
        ident: dict[str, Any] = {
            "path": real,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns,
            "ino": st.st_ino,
            "dev": st.st_dev,
        }
        return hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest(), ident
    if sha256 is not None:
        digest = sha256.lower()
        return f"sha256-{digest}", {"sha256": digest}
    return None


def load(source: ShardSource, path: str | None, sha256: str | None) -> OffsetIndex | None:
    """The cached scan of this shard if one exists and still describes it, else None."""
    found = _identity(path, sha256)
    if found is None:
        return None
    name, ident = found
    file = _directory() / f"{name}.idx"
    try:
        with open(file, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_SIDECAR_BYTES + 4096:
                return None
            data = f.read(size)  # read(n) would allocate n bytes up front
        raw = msgpack.unpackb(data, raw=False)
        if not isinstance(raw, dict) or raw.get("format") != _FORMAT or raw.get("of") != ident:
            return None
        index = OffsetIndex.from_bytes(raw["index"], f"{source.url} (cached scan {file})")
    except (OSError, ValueError, KeyError, TypeError, ShardError, msgpack.UnpackException):
        return None
    if "size" in ident and index.shard_size != ident["size"]:
        return None
    return index


def save(source: ShardSource, path: str | None, sha256: str | None, index: OffsetIndex) -> None:
    """Keep ``index`` (a fresh scan of this shard) for the next open; errors are ignored."""
    found = _identity(path, sha256)
    if found is None:
        return
    name, ident = found
    folder = _directory()
    payload = msgpack.packb(
        {"format": _FORMAT, "url": source.url, "of": ident, "index": index.to_bytes()},
        use_bin_type=True,
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".scan-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            os.replace(tmp, folder / f"{name}.idx")
        except BaseException:
            os.unlink(tmp)
            raise
        _trim(folder)
    except OSError:
        return


def _trim(folder: Path) -> None:
    """Keep the cache bounded: past ``_MAX_ENTRIES`` entries, drop the oldest quarter."""
    entries = list(folder.glob("*.idx"))
    if len(entries) <= _MAX_ENTRIES:
        return
    aged = []
    for entry in entries:
        try:
            aged.append((entry.stat().st_mtime_ns, entry))
        except OSError:
            continue
    aged.sort()
    for _mtime, entry in aged[: len(aged) - (_MAX_ENTRIES * 3) // 4]:
        try:
            entry.unlink()
        except OSError:
            continue


def forget(path: str | None, sha256: str | None) -> None:
    """Drop the cached scan of a shard (a read found it wrong)."""
    found = _identity(path, sha256)
    if found is not None:
        try:
            os.unlink(_directory() / f"{found[0]}.idx")
        except OSError:
            return
