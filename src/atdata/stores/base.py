"""The data store interface: where the bytes of a dataset's shards live.

An index repository is a provider (where records live) plus a :class:`DataStore` (where shard
bytes live). Several indexes may share one store (a SQLite and a Redis index over the same
``ATDATA_HOME/data``, two machines over one S3 bucket and prefix), each unaware of the others'
records, so a store never lets one write touch another's files:

* every write gets a fresh random **write id** (:func:`new_write_id`), and its shards go to a
  location private to that write: ``<name>/<version>/<write_id>/<basename>-000000.tar``. Two
  indexes that both write ``mnist@1`` get two write ids, so two sets of files;
* a **sink** (:meth:`DataStore.open_sink`) creates its file exclusively: it never replaces a file
  that is already there (disk: hard link + unlink, never ``rename`` over; S3: ``If-None-Match: *``
  on PutObject and CompleteMultipartUpload, where the server honours it);
* the index deletes only what one entry owns: the shard URLs recorded in a removed entry and
  their ``.idx`` sidecars (:meth:`DataStore.delete_shards`, each URL checked to lie in that
  entry's own location), or everything under the private location of one write that failed or
  crashed (:meth:`DataStore.delete_write`). Never a whole ``<name>/<version>/``, never URLs of
  shards registered in place (``insert(copy=False)``).

Versions written before write ids existed have their shards directly in
``<name>/<version>/``; ``delete_write(name, version, None)`` deletes only the files directly in
that directory (never the write-id directories beside them).

Reading goes through :func:`atdata.sources.open_source` by URL scheme, so the URLs a store hands
out (``shard_pattern % n``) must be openable there: plain absolute paths for the disk store,
``s3://bucket/key`` for S3. :meth:`DataStore.verify` re-hashes shards against their records
through that same path; a store may override it with something cheaper.

Dataset names reach stores already validated by :func:`validate_dataset_name`: lowercase
segments of ``a-z0-9._-`` separated by ``/`` (``team/mnist``), never absolute, never ``..``,
never all digits (version directories are all digits).
"""

import abc
import hashlib
import logging
import re
import secrets
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .._fs import hash_stream
from .._redact import Redacted
from ..errors import AtdataWarning, InvalidArgumentError, SourceError, StoreError
from ..shards.info import ShardInfo
from ..shards.sink import ShardSink

__all__ = [
    "DataStore",
    "ShardProblem",
    "check_entry_key",
    "check_version",
    "check_write_id",
    "new_write_id",
    "shard_basename",
    "validate_dataset_name",
    "log_verified",
    "verify_shards",
    "verify_sidecar",
    "warn_not_owned",
]

_log = logging.getLogger(__name__)

_SEGMENT = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_WRITE_ID = re.compile(r"[0-9a-f]{16}")
_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}")
_MAX_NAME = 200
_MAX_SEGMENTS = 4


def validate_dataset_name(name: object) -> str:
    """Return ``name`` if it is a valid dataset name, else raise InvalidArgumentError saying why.

    >>> validate_dataset_name("team/mnist")
    'team/mnist'
    >>> validate_dataset_name("../etc")
    Traceback (most recent call last):
    ...
    atdata.errors.InvalidArgumentError: dataset name '../etc': segment '..' must start with a-z or 0-9 ...
    """
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"a dataset name must be a non-empty string, got {name!r}")
    if len(name) > _MAX_NAME:
        raise InvalidArgumentError(
            f"dataset name {name[:40]!r}... is longer than {_MAX_NAME} characters"
        )
    segments = name.split("/")
    if len(segments) > _MAX_SEGMENTS:
        raise InvalidArgumentError(
            f"dataset name {name!r} has more than {_MAX_SEGMENTS} '/'-separated parts"
        )
    for seg in segments:
        if not _SEGMENT.fullmatch(seg) or ".." in seg:
            raise InvalidArgumentError(
                f"dataset name {name!r}: segment {seg!r} must start with a-z or 0-9 and hold only "
                "lowercase letters, digits, '.', '_' and '-' (no '..', no leading '/', at most 64 "
                "characters), e.g. 'mnist' or 'team/mnist-v2'"
            )
        if seg.isdigit():
            raise InvalidArgumentError(
                f"dataset name {name!r}: segment {seg!r} is all digits, which is reserved for "
                "version directories; add a letter"
            )
    return name


def shard_basename(name: str) -> str:
    """The file-name stem of a dataset's shards: the last segment of its name."""
    return name.rsplit("/", 1)[-1]


def check_version(version: object) -> int:
    """Return ``version`` if it is a dataset version (an int from 1), else raise InvalidArgumentError."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidArgumentError(f"dataset versions are integers from 1, got {version!r}")
    return version


def new_write_id() -> str:
    """A fresh write id: 16 random hex digits (64 bits), naming one write's private location."""
    return secrets.token_hex(8)


def check_write_id(write_id: object) -> str:
    """Return ``write_id`` if it has the form :func:`new_write_id` makes, else raise InvalidArgumentError."""
    if not isinstance(write_id, str) or not _WRITE_ID.fullmatch(write_id):
        raise InvalidArgumentError(f"a write id is 16 lowercase hex digits, got {write_id!r}")
    return write_id


def check_entry_key(relative: str, name: str, version: int) -> str | None:
    """The write id of a shard at ``relative`` (a path inside a store, '/'-separated) that
    belongs to ``name`` at ``version``; None for a shard of the layout without write ids.

    Raises ValueError when ``relative`` is not ``<name>/<version>/[<write_id>/]<file>``: such a
    URL is not that entry's to delete.

    >>> check_entry_key("team/mnist/3/0123456789abcdef/mnist-000000.tar", "team/mnist", 3)
    '0123456789abcdef'
    >>> check_entry_key("team/mnist/3/mnist-000000.tar", "team/mnist", 3) is None
    True
    """
    head = f"{validate_dataset_name(name)}/{check_version(version)}/"
    rest = relative[len(head) :].split("/") if relative.startswith(head) else []
    write_id = rest[0] if len(rest) == 2 else None
    ok = len(rest) in (1, 2) and _FILE.fullmatch(rest[-1]) is not None
    if ok and write_id is not None:
        ok = _WRITE_ID.fullmatch(write_id) is not None
    if not ok:
        raise InvalidArgumentError(
            f"{relative!r} is not a shard of {name}@{version} (expected "
            f"{head}[<write id>/]<file>); it is not that entry's to delete"
        )
    return write_id


def warn_not_owned(store: object, url: str, why: object) -> None:
    """Warn that ``url`` was left in ``store`` by a deletion because the entry does not own it."""
    warnings.warn(
        f"{store!r} did not delete {url!r}: {why}",
        AtdataWarning,
        stacklevel=3,
    )


@dataclass(frozen=True)
class ShardProblem:
    """A shard whose bytes do not match its record (or cannot be read at all)."""

    url: str
    problem: str
    expected: str | None = None
    actual: str | None = None

    def __str__(self) -> str:
        detail = f" (expected {self.expected}, found {self.actual})" if self.expected else ""
        return f"{self.url}: {self.problem}{detail}"


class DataStore(abc.ABC):
    """Where shard bytes live. Subclasses: LocalDiskStore (stores/disk.py), S3DataStore."""

    #: A short word naming the kind of store in records and messages: "disk", "s3".
    kind: str = "store"

    @abc.abstractmethod
    def shard_pattern(self, name: str, version: int, write_id: str) -> str:
        """A ``ShardWriter`` pattern (one ``%06d``) for the shards of one write of ``name`` at
        ``version``, in a location private to ``write_id`` (from :func:`new_write_id`).

        Disk: ``<root>/<name>/<version>/<write_id>/<basename>-%06d.tar``; S3:
        ``s3://<bucket>/<prefix><name>/<version>/<write_id>/<basename>-%06d.tar``. ``name`` is
        already validated; any literal ``%`` in a root or prefix must be escaped as ``%%``.
        """

    @abc.abstractmethod
    def open_sink(self, location: str) -> ShardSink:
        """A sink that makes ``location`` appear whole on ``commit()``, not at all on ``abort()``.

        ``location`` is a shard URL made from :meth:`shard_pattern` or such a URL plus a sidecar
        suffix (``.idx``). This is the ``sink_factory`` given to ``ShardWriter``; it raises
        StoreError for a location outside the store. ``commit()`` never replaces an object
        already at ``location`` (StoreError instead), where the storage can tell.
        """

    @abc.abstractmethod
    def owns(self, url: str) -> bool:
        """True when ``url`` lies inside this store (the index refuses to register such URLs
        under a second entry with ``copy=False``, so a version's shards have one owner)."""

    @abc.abstractmethod
    def delete_shards(self, name: str, version: int, urls: Sequence[str]) -> None:
        """Delete the shards at ``urls`` (recorded in the entry ``name@version``) and their
        ``.idx`` sidecars; nothing else.

        Each URL must lie in this store at that entry's own location (see
        :func:`check_entry_key`); one that does not is left alone, with an AtdataWarning.
        Idempotent: missing files are not an error. Raises StoreError when deletion fails.
        """

    @abc.abstractmethod
    def delete_write(self, name: str, version: int, write_id: str | None) -> None:
        """Delete everything one write of ``name@version`` left in its private location
        (shards, sidecars, temporary files, unfinished uploads): a failed or crashed write.

        ``write_id`` None: a version written before write ids, whose files lie directly in
        ``<name>/<version>/``; only those files go, never the write-id locations beside them.
        Idempotent. Raises StoreError when deletion fails.
        """

    def sink_factory(self, location: str) -> ShardSink:
        """Alias of :meth:`open_sink` with the ``SinkFactory`` shape, for ``ShardWriter``."""
        return self.open_sink(location)

    def verify(self, shards: Sequence[ShardInfo]) -> list[ShardProblem]:
        """Re-hash ``shards`` and report every one whose size or digest differs from its record."""
        return verify_shards(shards)


def verify_shards(
    shards: Sequence[ShardInfo], open_source: Callable[[str], Any] | None = None
) -> list[ShardProblem]:
    """Re-hash ``shards`` and report every mismatch or unreadable one.

    ``open_source`` turns a shard URL into a source (default: by URL scheme, with the
    process-wide settings); a store passes its own to read through its own configuration.
    """
    if open_source is None:
        from ..sources import open_source as by_scheme

        open_source = by_scheme
    return [
        p for p in (log_verified(s, _verify_one(s, open_source)) for s in shards) if p is not None
    ]


def log_verified(shard: ShardInfo, problem: "ShardProblem | None") -> "ShardProblem | None":
    """Log the result of re-hashing ``shard`` (debug when it matched, warning when not);
    ``problem``, unchanged."""
    if problem is None:
        _log.debug(
            "%s verified: %s matches its record", Redacted(shard.url), shard.checksum.algorithm
        )
    else:
        _log.warning("failed verification: %s", Redacted(problem))
    return problem


def _verify_one(shard: ShardInfo, open_source: Callable[[str], Any]) -> ShardProblem | None:
    algorithm = shard.checksum.algorithm.lower()
    if algorithm not in hashlib.algorithms_available:
        return ShardProblem(shard.url, f"unknown checksum algorithm {shard.checksum.algorithm!r}")
    try:
        with open_source(shard.url).open() as stream:
            digest, size = hash_stream(stream, algorithm)
    except (SourceError, OSError, StoreError) as exc:
        return ShardProblem(shard.url, f"cannot be read: {exc}")
    if size != shard.size:
        return ShardProblem(shard.url, "size differs", str(shard.size), str(size))
    if digest != shard.checksum.digest.lower():
        return ShardProblem(shard.url, f"{algorithm} differs", shard.checksum.digest, digest)
    return verify_sidecar(open_source(shard.url), shard)


def verify_sidecar(source: Any, shard: ShardInfo) -> ShardProblem | None:
    """Check the ``.idx`` sidecar of a shard whose bytes matched ``shard`` (see
    :func:`atdata.shards.sidecar_check.sidecar_problem`)."""
    from ..shards.sidecar_check import sidecar_problem

    side = shard.sidecar_checksum
    problem = sidecar_problem(
        source,
        size=shard.size,
        sha256=shard.checksum.digest if shard.checksum.algorithm.lower() == "sha256" else None,
        sidecar_sha256=side.digest if side is not None and side.algorithm == "sha256" else None,
    )
    return None if problem is None else ShardProblem(shard.url, problem)
