"""Dataset versions in one repository: reserve, commit, read, remove and clean up.

Record kinds used here (keys in parentheses):

* ``dataset`` (``name#0000000007``): one immutable :class:`DatasetEntry` per version;
* ``head`` (``name``): ``{"next": int, "latest": int | None}``; ``next`` only grows, so a
  version number is never reused, even after removal;
* ``pending`` (``name#0000000007``): a version reserved for shards being written into the store,
  with the write id of that write (its private location in the store); removed when its entry
  commits or the write is abandoned;
* ``trash`` (``name#0000000007``): a removed version whose stored shards are still to be deleted,
  with their URLs (``urls``).

Removal first deletes the entry (and records the trash) in one transaction, then deletes the
shards, then the trash record; a crash in between leaves trash that :func:`collect_garbage`
finishes, so no entry ever points at deleted shards and no shards outlive their entry for long.
Only what an entry or a write owns is deleted: the recorded URLs of a removed entry (and their
sidecars), or the private location of a write that failed (see :mod:`atdata.stores.base`).
Several indexes may share one store; none ever deletes the others' shards.

A malformed trash or pending record (hand-edited, or written by a buggy client) is skipped with
an :class:`~atdata.errors.AtdataWarning` and reported in :attr:`GarbageReport.skipped`; the
rest is still cleaned.
"""

import contextlib
import os
import socket
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .._clock import utc_now
from ..errors import (
    AtdataIndexError,
    AtdataWarning,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    StoreError,
)
from ..schema import Schema
from ..shards.info import ShardInfo
from ..stores.base import (
    check_version,
    check_write_id,
    new_write_id,
    validate_dataset_name,
)
from .cid import dataset_cid
from .entries import DatasetEntry, LabelEntry
from .providers.base import Record, Transaction
from .refs import dataset_key, name_prefix
from .repository import Repository
from .schemas import add_schema_tx

__all__ = [
    "GarbageReport",
    "collect_garbage",
    "commit_entry",
    "get_entry",
    "iter_entries",
    "iter_latest",
    "release_version",
    "remove_version",
    "reserve_version",
]


class GarbageReport(list[str]):
    """What :func:`collect_garbage` cleaned (``name@version`` strings, a plain list), with
    ``skipped``: the malformed trash or pending records it left alone, each described."""

    def __init__(self, cleaned: Iterable[str] = (), skipped: list[str] | None = None) -> None:
        super().__init__(cleaned)
        self.skipped: list[str] = list(skipped or [])


def reserve_version(repo: Repository, name: str) -> tuple[int, str]:
    """Allocate the next version of ``name`` and mark it pending (its shards are being written);
    returns the version and a fresh write id (the write's private location in the store)."""
    write_id = new_write_id()
    with repo.provider.transaction() as tx:
        version = _allocate(tx, name)
        tx.put(
            "pending",
            dataset_key(name, version),
            {
                "name": name,
                "version": version,
                "write_id": write_id,
                "created_at": utc_now(),
                "host": socket.gethostname(),
                "pid": os.getpid(),
            },
        )
    return version, write_id


def release_version(repo: Repository, name: str, version: int, write_id: str) -> None:
    """Abandon a reserved version: delete whatever its write left in the store, then the mark.

    Best effort: if the store cannot delete now, the pending mark stays for
    :func:`collect_garbage`.
    """
    if repo.store is not None:
        try:
            repo.store.delete_write(name, version, write_id)
        except StoreError:
            return
    with contextlib.suppress(AtdataIndexError), repo.provider.transaction() as tx:
        tx.delete("pending", dataset_key(name, version))


def commit_entry(
    repo: Repository,
    *,
    name: str,
    version: int | None,
    schema: Schema | None,
    shards: Sequence[ShardInfo],
    stored: bool,
    description: str | None,
    metadata: Mapping[str, Any] | None,
    tags: Sequence[str],
    license: str | None,
    schema_ref: str | None = None,
    lineage: Mapping[str, Any] | None = None,
) -> DatasetEntry:
    """Record a dataset version, its schema and its head in one transaction.

    ``schema_ref`` names a schema already recorded (used when ``schema`` is None);
    ``lineage`` is a derived version's lineage record (:mod:`atdata.derive.lineage`).

    ``version`` None allocates the next version inside the same transaction (for shards that
    are not written into the store); otherwise it is a version from :func:`reserve_version`.
    """
    with repo.provider.transaction() as tx:
        if schema is not None:
            schema_ref = add_schema_tx(tx, schema, repo=repo.name).ref
        if version is None:
            version = _allocate(tx, name)
        entry = DatasetEntry(
            name=name,
            version=version,
            cid=dataset_cid(schema_ref, shards),
            schema_ref=schema_ref,
            shards=tuple(shards),
            count=sum(s.count for s in shards),
            created_at=utc_now(),
            metadata=dict(metadata or {}),
            description=description,
            tags=tuple(tags),
            license=license,
            stored=stored,
            repo=repo.name,
            lineage=dict(lineage) if lineage else None,
        )
        key = dataset_key(name, version)
        tx.create("dataset", key, entry.to_record())
        head = _head(tx, name)
        head["latest"] = max(head.get("latest") or 0, version)
        tx.put("head", name, head)
        tx.delete("pending", key)
    return entry


def get_entry(repo: Repository, name: str, version: int | None) -> DatasetEntry | None:
    """One version of ``name`` (None: the latest), or None if there is none."""
    for _ in range(3):  # the latest may be removed between reading the head and the entry
        wanted = version
        if wanted is None:
            head = repo.provider.get("head", name)
            wanted = None if head is None else head.get("latest")
            if wanted is None:
                return None
        record = repo.provider.get("dataset", dataset_key(name, wanted))
        if record is not None:
            return DatasetEntry.from_record(record, repo=repo.name)
        if version is not None:
            return None
    return None


def iter_entries(repo: Repository, prefix: str) -> Iterator[DatasetEntry]:
    """Every dataset version whose key starts with ``prefix``, by name then version, lazily."""
    for _, record in repo.provider.iter_scan("dataset", prefix):
        yield DatasetEntry.from_record(record, repo=repo.name)


def iter_latest(repo: Repository) -> Iterator[DatasetEntry]:
    """The newest version of every dataset, by name, lazily."""
    held: DatasetEntry | None = None
    for entry in iter_entries(repo, ""):
        if held is not None and held.name != entry.name:
            yield held
        held = entry
    if held is not None:
        yield held


def remove_version(repo: Repository, name: str, version: int, *, force: bool) -> DatasetEntry:
    """Remove one version (and with ``force``, the labels naming it); then delete its shards."""
    key = dataset_key(name, version)
    with repo.provider.transaction() as tx:
        record = tx.get("dataset", key)
        if record is None:
            raise NotFoundError(f"no dataset {name}@{version} in repository {repo.name!r}")
        entry = DatasetEntry.from_record(record, repo=repo.name)
        labels = [
            lab
            for lab in (LabelEntry.from_record(r, repo=repo.name) for _, r in tx.scan("label"))
            if lab.dataset == name and lab.version == version
        ]
        if labels and not force:
            names = ", ".join(repr(lab.name) for lab in labels)
            raise ConflictError(
                f"{name}@{version} is named by label(s) {names}; move or remove them first, or "
                "pass force=True to remove them too"
            )
        for lab in labels:
            tx.delete("label", lab.name)
        tx.delete("dataset", key)
        head = _head(tx, name)
        if head.get("latest") == version:
            remaining = tx.scan("dataset", name_prefix(name))
            head["latest"] = remaining[-1][1]["version"] if remaining else None
        tx.put("head", name, head)
        if entry.stored:
            trash = {"name": name, "version": version, "urls": entry.urls, "created_at": utc_now()}
            tx.put("trash", key, trash)
    if entry.stored:
        _purge(repo, key, _Mark("trash", name, version, urls=entry.urls))
    return entry


def collect_garbage(repo: Repository, *, pending_age: timedelta) -> GarbageReport:
    """Delete shards of removed versions, and of writes abandoned for longer than
    ``pending_age`` (or whose writer process on this host is gone).

    Returns what was cleaned; malformed records are skipped (an AtdataWarning each) and listed
    in the result's ``skipped``.
    """
    report = GarbageReport()
    for kind in ("trash", "pending"):
        for key, record in list(repo.provider.iter_scan(kind)):
            try:
                mark = _parse_mark(kind, key, record)
            except ValueError as exc:
                problem = f"{kind} record {key!r} in repository {repo.name!r}: {exc}"
                warnings.warn(
                    f"gc skipped the malformed {problem}; fix or delete that record by hand",
                    AtdataWarning,
                    stacklevel=3,
                )
                report.skipped.append(problem)
                continue
            if kind == "pending" and not _is_stale(record, pending_age):
                continue
            if _purge(repo, key, mark):
                report.append(f"{mark.name}@{mark.version}")
    return report


# -- internals --------------------------------------------------------------------------------
def _head(tx: Transaction, name: str) -> Record:
    head = tx.get("head", name)
    return dict(head) if head is not None else {"next": 1, "latest": None}


def _allocate(tx: Transaction, name: str) -> int:
    head = _head(tx, name)
    version = int(head["next"])
    head["next"] = version + 1
    tx.put("head", name, head)
    return version


class _Mark:
    """A trash or pending record, checked: what to delete and which record to drop after."""

    def __init__(
        self,
        kind: str,
        name: str,
        version: int,
        *,
        urls: list[str] | None = None,
        write_id: str | None = None,
    ) -> None:
        self.kind, self.name, self.version = kind, name, version
        self.urls, self.write_id = urls, write_id


def _parse_mark(kind: str, key: str, record: Record) -> _Mark:
    """The checked content of a trash/pending record; ValueError saying what is wrong."""
    if not isinstance(record, dict):
        raise InvalidArgumentError(f"not a JSON object: {record!r:.80}")
    name, version = record.get("name"), record.get("version")
    validate_dataset_name(name)
    assert isinstance(name, str)
    check_version(version)
    assert isinstance(version, int)
    if dataset_key(name, version) != key:
        raise InvalidArgumentError(f"it names {name}@{version}, which has another key")
    if kind == "trash" and "urls" in record:
        urls = record["urls"]
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise InvalidArgumentError(f"'urls' must be a list of strings, got {urls!r:.80}")
        return _Mark(kind, name, version, urls=urls)
    write_id = record.get("write_id")
    if write_id is not None:
        check_write_id(write_id)
    # no urls / no write_id: written before write ids; the files right in <name>/<version>/
    return _Mark(kind, name, version, write_id=write_id)


def _purge(repo: Repository, key: str, mark: _Mark) -> bool:
    """Delete what ``mark`` owns in the store, then the mark; False if the store failed."""
    if repo.store is None:
        return False
    try:
        if mark.urls is not None:
            repo.store.delete_shards(mark.name, mark.version, mark.urls)
        else:
            repo.store.delete_write(mark.name, mark.version, mark.write_id)
    except StoreError:
        return False
    with repo.provider.transaction() as tx:
        tx.delete(mark.kind, key)
    return True


def _is_stale(record: Record, max_age: timedelta) -> bool:
    pid = record.get("pid")
    if record.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        return True
    try:
        created = datetime.fromisoformat(str(record["created_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return True
    return datetime.now(UTC) - created > max_age


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True
