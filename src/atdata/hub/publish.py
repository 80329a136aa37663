"""Publishing an index dataset version to a Hub dataset repository (``hf://datasets/org/name``).

One publish is one commit: the shards go to ``data/<split>/<file>``, each with its offset index
(``.idx``) and manifest (``.manifest``) when it has them, and ``README.md`` is the dataset card
(:mod:`atdata.hub.card`). What the repository already holds at ``main`` is compared first, by
the sha256 the index records against the LFS sha256 the Hub lists: unchanged files are not
uploaded and an unchanged version makes no commit at all. Files under ``data/`` that the version
does not have are deleted in the same commit, so the card's globs match exactly its shards.
Files are uploaded one at a time before the commit; an interrupted publish, run again, finds the
objects already uploaded (the LFS batch answer has nothing to do for them) and sends only the
rest. The commit names the head it was planned against, so a concurrent commit makes it fail
instead of mixing two plans. Needs ``pip install 'atdata[hf]'``.
"""

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .._fs import sha256_file
from .._optional import require
from ..errors import InvalidArgumentError, SourceError
from ..shards.info import ShardInfo
from ..shards.offsets import OFFSETS_SUFFIX
from ..sources import scheme_of
from ..sources.hf import hub_api, parse_hub_url
from .card import CardFacts, CardShard, dataset_card

__all__ = ["HubPublished", "publish_to_hub"]

_CARD = "README.md"
_DATA = "data/"
_SIDECARS = (OFFSETS_SUFFIX, ".manifest")

#: ``progress(path, done_bytes, total_bytes)`` after each file is uploaded.
Progress = Callable[[str, int, int], None]


class _IndexLike(Protocol):
    def entry(self, ref: str) -> Any: ...
    def get_schema(self, ref: str) -> Any: ...


@dataclass(frozen=True)
class HubPublished:
    """What :func:`publish_to_hub` did: the repository, the commit now at ``main`` and the
    files it uploaded (empty when the repository already held this version)."""

    repo_id: str
    commit: str
    uploaded: tuple[str, ...]
    deleted: tuple[str, ...]

    @property
    def created(self) -> bool:
        return bool(self.uploaded or self.deleted)

    @property
    def url(self) -> str:
        return f"hf://datasets/{self.repo_id}"


@dataclass(frozen=True)
class _Upload:
    path: str  # in the repository
    local: str | None  # a file here, or None for the card
    sha256: str
    size: int
    content: bytes | None = None


def publish_to_hub(
    index: _IndexLike,
    ref: str,
    *,
    to: str,
    private: bool | None = None,
    token: str | None = None,
    split: str | None = None,
    progress: Progress | None = None,
) -> HubPublished:
    """Publish the index dataset ``ref`` (``"mnist"``, ``"mnist@3"``) to the Hub repository
    ``to`` (``hf://datasets/org/name``), creating it (``private`` as asked) when missing.

    ``split`` names the split the shards are (default ``train``). The token is ``token``, else ``$HF_TOKEN``, else the stored ``hf auth login``.
    """
    where = parse_hub_url(to)
    if where.path or where.revision:
        raise InvalidArgumentError(f"publish to a repository, hf://datasets/org/name; not {to!r}")
    entry = index.entry(ref)
    schema = index.get_schema(entry.schema_ref).schema if entry.schema_ref else None
    files, shards = _plan_shards(entry.shards, split)
    facts = CardFacts(
        name=entry.name,
        version=entry.version,
        entry_cid=entry.cid,
        schema=schema,
        shards=shards,
        description=entry.description,
        license=entry.license,
        tags=tuple(entry.tags),
        repo_id=where.repo_id,
        extra=_lineage_block(entry.lineage),
    )
    card = dataset_card(facts).encode()
    files.append(_Upload(_CARD, None, hashlib.sha256(card).hexdigest(), len(card), card))
    api = hub_api(token)
    hub = require("huggingface_hub", "hf")
    api.create_repo(where.repo_id, repo_type="dataset", private=private, exist_ok=True)
    head = api.dataset_info(where.repo_id, revision="main").sha
    present = _present(api, where.repo_id, head)
    wanted = {f.path for f in files}
    todo = [f for f in files if present.get(f.path) != (f.sha256 if f.content is None else _git(f))]
    stale = sorted(p for p in present if p.startswith(_DATA) and p not in wanted)
    if not todo and not stale:
        return HubPublished(where.repo_id, head, (), ())
    operations: list[Any] = []
    total, done = sum(f.size for f in todo), 0
    try:
        for item in todo:
            data = item.content if item.local is None else item.local
            op = hub.CommitOperationAdd(item.path, data)
            api.preupload_lfs_files(where.repo_id, [op], repo_type="dataset")
            operations.append(op)
            done += item.size
            if progress is not None:
                progress(item.path, done, total)
        operations += [hub.CommitOperationDelete(p) for p in stale]
        info = api.create_commit(
            where.repo_id,
            operations,
            commit_message=f"atdata: publish {entry.name}@{entry.version}",
            repo_type="dataset",
            parent_commit=head,
        )
    except (RuntimeError, ValueError, OSError) as exc:  # the client's HTTP errors among them
        raise SourceError(
            f"publishing {entry.name}@{entry.version} to {to} stopped after {len(operations)} "
            f"of {len(todo)} file(s): {exc}; run it again to resume (what was uploaded is "
            "not sent again)"
        ) from exc
    return HubPublished(where.repo_id, info.oid, tuple(f.path for f in todo), tuple(stale))


def _git(item: _Upload) -> str:
    """The git blob id of a small file sent inline (what the Hub lists for non-LFS files)."""
    assert item.content is not None
    return hashlib.sha1(b"blob %d\0" % len(item.content) + item.content).hexdigest()


def _present(api: Any, repo_id: str, head: str) -> dict[str, str]:
    """Path -> LFS sha256 (or git blob id) of every file at ``head``."""
    out: dict[str, str] = {}
    for item in api.list_repo_tree(repo_id, repo_type="dataset", revision=head, recursive=True):
        if not hasattr(item, "blob_id"):
            continue
        lfs = getattr(item, "lfs", None)
        out[item.path] = lfs.sha256 if lfs is not None else item.blob_id
    return out


def _plan_shards(
    infos: "tuple[ShardInfo, ...]", split: str | None
) -> tuple[list[_Upload], list[CardShard]]:
    uploads: list[_Upload] = []
    shards: list[CardShard] = []
    names = [os.path.basename(s.url) for s in infos]
    unique = len(set(names)) == len(names)
    for i, (info, name) in enumerate(zip(infos, names, strict=True)):
        if scheme_of(info.url) != "file" or not os.path.isfile(info.url):
            raise SourceError(
                f"shard {info.url!r} is not a local file: publishing to the Hub uploads local "
                "shards (copy the dataset to a local repository first)"
            )
        if info.checksum.algorithm.lower() != "sha256":
            raise SourceError(f"shard {info.url!r} has no sha256 in the index")
        part = split or "train"
        path = f"{_DATA}{part}/{name if unique else f'{i:05d}-{name}'}"
        uploads.append(_Upload(path, info.url, info.checksum.digest.lower(), info.size))
        sidecars: dict[str, str] = {}
        for suffix in _SIDECARS:
            local = info.url + suffix
            if not os.path.isfile(local):
                continue
            digest, size = sha256_file(local)
            recorded = info.sidecar_checksum if suffix == OFFSETS_SUFFIX else None
            if recorded is not None and recorded.digest.lower() != digest:
                raise SourceError(f"sidecar {local!r} does not match the index's checksum")
            sidecars[suffix] = digest
            uploads.append(_Upload(path + suffix, local, digest, size))
        shards.append(
            CardShard(path, info.checksum.digest.lower(), info.size, info.count, part, sidecars)
        )
    return uploads, shards


def _lineage_block(lineage: Any) -> dict[str, Any]:
    """A derived entry's lineage as the card's ``atdata`` block carries it (as the atmosphere
    record does: refs, CIDs, digests; no local paths)."""
    from ..atmosphere.publish import published_lineage

    published = published_lineage(lineage)
    return {"lineage": published} if published else {}
