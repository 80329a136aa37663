"""Shards as PDS blobs: size checks before anything is sent, optional splitting, upload.

A PDS refuses blobs over its ``blobUploadLimit`` and the storageBlobs lexicon caps a blob at its
``maxSize``; :meth:`AtmosphereClient.max_blob_bytes` is the lower of the two. Shards over that
limit are refused before the first byte is sent, or, with ``split=True``, re-cut at sample
boundaries into several valid tar shards under the limit (each member's header and body are
copied byte for byte, so keys and samples are unchanged; only the shard boundaries move).

Publishing is done in two passes so that a re-run sends nothing: :func:`plan_blobs` reads and
hashes the shards and returns the blob storage they would become (CIDs computed locally);
:func:`upload_blobs` then sends the bytes and checks the PDS stored each under the planned CID.
"""

import hashlib
import io
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO, TypeVar

from ..errors import AtmosphereError, IntegrityError, ShardError, SourceError
from ..manifest.format import MANIFEST_SUFFIX
from ..net.ids import cid_of_sha256
from ..shards.info import Checksum, ShardInfo
from ..shards.offsets import OFFSETS_SUFFIX
from ..shards.reader import iter_members
from ..shards.tar import BLOCK
from ..sources import open_source
from ..sources.chunked import ChunkDigests, chunk_size_for
from .client import AtmosphereClient
from .storage import BLOB_MIME_TYPE, BlobRef, BlobShard, BlobStorage

__all__ = [
    "BlobPlan",
    "plan_and_upload",
    "plan_blobs",
    "recorded_blobs",
    "sha256_of",
    "split_shard",
    "upload_blobs",
]

T = TypeVar("T")
U = TypeVar("U")
_END_OF_ARCHIVE = bytes(2 * BLOCK)
#: shards read and hashed at once while planning (hashlib releases the GIL on large inputs)
_HASH_WORKERS = max(1, min(4, os.cpu_count() or 1))
#: blobs (and sidecars) sent to the PDS at once
_UPLOAD_WORKERS = 3
#: MIME type of the manifest and offset-index blobs uploaded beside a shard
SIDECAR_MIME_TYPE = "application/octet-stream"


def sha256_of(shard: ShardInfo) -> str | None:
    """The shard's recorded sha256 (lowercase hex), or None when it was recorded with another
    algorithm."""
    c = shard.checksum
    return c.digest.lower() if c.algorithm.lower() == "sha256" else None


class _BytesSource:
    """Enough of a ShardSource to run the tar reader over bytes in memory."""

    def __init__(self, data: bytes, url: str) -> None:
        self.url = url
        self._data = data

    def local_path(self) -> str | None:
        return None

    def open(self) -> BinaryIO:
        return io.BytesIO(self._data)

    def read_range(self, start: int, length: int) -> bytes:
        return self._data[start : start + length]

    def read_sidecar(self, suffix: str) -> bytes | None:
        return None


def split_shard(data: bytes, limit: int, *, where: str) -> list[bytes]:
    """``data`` (a tar shard) cut at member boundaries into tar shards of at most ``limit`` bytes.

    Everything between the end of one regular member and the end of the next (PAX or GNU
    long-name headers included) moves as a unit; each piece ends with the two zero blocks of a
    tar end-of-archive. AtmosphereError if one member alone does not fit.
    """
    if len(data) <= limit:
        return [data]
    extents: list[tuple[int, int]] = []
    start = 0
    for m, _body in iter_members(_BytesSource(data, where)):
        end = m.body_offset + m.size + (-m.size) % BLOCK
        extents.append((start, end))
        start = end
    pieces: list[bytes] = []
    cur: list[tuple[int, int]] = []
    cur_size = len(_END_OF_ARCHIVE)
    for a, b in extents:
        n = b - a
        if n + len(_END_OF_ARCHIVE) > limit:
            raise AtmosphereError(
                f"{where}: the member at byte {a} is {n} bytes, which alone exceeds the "
                f"{limit}-byte blob limit; it cannot be published as a PDS blob"
            )
        if cur and cur_size + n > limit:
            pieces.append(b"".join(data[x:y] for x, y in cur) + _END_OF_ARCHIVE)
            cur, cur_size = [], len(_END_OF_ARCHIVE)
        cur.append((a, b))
        cur_size += n
    if cur:
        pieces.append(b"".join(data[x:y] for x, y in cur) + _END_OF_ARCHIVE)
    return pieces


def _read(shard: ShardInfo) -> tuple[bytes, bytes]:
    """The shard's bytes and their sha256 digest (checked against the index's, if known)."""
    try:
        with open_source(shard.url).open() as f:
            data = f.read()
    except SourceError:
        raise
    except OSError as exc:
        raise SourceError(f"cannot read shard {shard.url}: {exc}") from exc
    digest = hashlib.sha256(data).digest()
    recorded = sha256_of(shard)
    if recorded is not None and digest.hex() != recorded:
        raise IntegrityError(
            f"shard bytes hash to {digest.hex()}, but the index recorded {recorded}; "
            "refusing to publish a corrupted shard",
            shard=shard.url,
        )
    return data, digest


def _sidecars(shard: ShardInfo) -> dict[str, bytes]:
    """The shard's manifest and offset index sidecars whose bytes match the checksums the index
    recorded for them (suffix -> bytes); a sidecar unrecorded, missing or stale is left out."""
    found: dict[str, bytes] = {}
    recorded = (
        (MANIFEST_SUFFIX, shard.manifest_checksum),
        (OFFSETS_SUFFIX, shard.sidecar_checksum),
    )
    for suffix, checksum in recorded:
        if checksum is None or checksum.algorithm.lower() != "sha256":
            continue
        try:
            data = open_source(shard.url).read_sidecar(suffix)
        except (SourceError, ShardError, OSError):
            continue
        if data is not None and hashlib.sha256(data).hexdigest() == checksum.digest.lower():
            found[suffix] = data
    return found


def _shard_pieces(
    shard: ShardInfo, limit: int, split: bool
) -> list[tuple[bytes, bytes, ShardInfo | None]]:
    """(bytes, sha256 digest, the shard when the blob is all of it) of each blob ``shard``
    becomes."""
    data, digest = _read(shard)
    if len(data) <= limit:
        return [(data, digest, shard)]
    if not split:
        raise AtmosphereError(
            f"{shard.url} is {len(data)} bytes, over the {limit}-byte blob limit of this PDS "
            "and lexicon; pass split=True to cut it at sample boundaries, or publish it by "
            "http(s)/S3 URL instead (nothing was uploaded)"
        )
    return [
        (piece, hashlib.sha256(piece).digest(), None)
        for piece in split_shard(data, limit, where=shard.url)
    ]


def _pieces(
    shards: Sequence[ShardInfo], limit: int, split: bool
) -> Iterator[tuple[bytes, bytes, ShardInfo | None]]:
    """:func:`_shard_pieces` of every shard, in order."""
    for shard in shards:
        yield from _shard_pieces(shard, limit, split)


def _in_order(
    pool: ThreadPoolExecutor, fn: Callable[[T], U], items: Iterable[T], *, ahead: int
) -> Iterator[U]:
    """``fn`` of each item, in order, with at most ``ahead`` running or done but not yet taken
    (so that memory stays bounded by ``ahead`` results)."""
    pending: deque[Future[U]] = deque()
    for item in items:
        if len(pending) >= ahead:
            yield pending.popleft().result()
        pending.append(pool.submit(fn, item))
    try:
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()


def check_sizes(shards: Sequence[ShardInfo], limit: int, split: bool) -> None:
    """Refuse shards whose recorded size is over ``limit`` (when not splitting) before anything
    is read or sent. Shards of unknown size are checked by :func:`plan_blobs` after reading,
    still before any upload."""
    if split:
        return
    too_big = [f"{s.url} ({s.size} bytes)" for s in shards if s.size > limit]
    if too_big:
        raise AtmosphereError(
            f"{len(too_big)} shard(s) exceed the {limit}-byte blob limit of this PDS and lexicon: "
            + ", ".join(too_big[:3])
            + ("..." if len(too_big) > 3 else "")
            + "; pass split=True to cut them at sample boundaries, write smaller shards, or "
            "publish them by http(s)/S3 URL instead"
        )


@dataclass
class BlobPlan:
    """What :func:`plan_blobs` found: the storage the shards become, and (when they fit in
    ``keep_bytes``) the blob bytes themselves, so that uploading does not read them again."""

    storage: BlobStorage
    pieces: list[bytes] | None
    #: per blob, the sidecars (suffix -> bytes) uploaded beside it (see :func:`_sidecars`)
    sidecars: list[dict[str, bytes]] = field(default_factory=list)


_Planned = tuple[bytes, bytes, dict[str, bytes], BlobShard]


def _plan_shard(
    shard: ShardInfo, limit: int, split: bool, chunk_size: int | None
) -> list[_Planned]:
    """(bytes, sha256, sidecars, planned BlobShard) of each blob ``shard`` becomes: the shard
    read, checked against the index's digest, and hashed (CID, per-chunk digests, sidecars).
    Run in workers: hashing releases the GIL, so shards overlap."""
    out = []
    for piece, digest, whole in _shard_pieces(shard, limit, split):
        found = _sidecars(whole) if whole is not None else {}
        found = {k: v for k, v in found.items() if len(v) <= limit}  # optional: never refused
        entry = BlobShard(
            BlobRef(cid=cid_of_sha256(digest), size=len(piece), mime_type=BLOB_MIME_TYPE),
            Checksum.sha256(digest.hex()),
            manifest=_ref(found.get(MANIFEST_SUFFIX)),
            offsets=_ref(found.get(OFFSETS_SUFFIX)),
            chunks=ChunkDigests.of(piece, chunk_size) if piece and chunk_size else None,
        )
        out.append((piece, digest, found, entry))
    return out


def recorded_blobs(shards: Sequence[ShardInfo], *, limit: int) -> BlobStorage | None:
    """The blobs the shards would become, from the sha256 digests the index recorded (nothing
    read): to tell whether an entry with these blobs may exist already. None when a shard has
    no recorded sha256 or is over ``limit`` (it would be split)."""
    blobs = []
    for shard in shards:
        digest = sha256_of(shard)
        if digest is None or shard.size > limit or shard.size < 0 or len(digest) != 64:
            return None
        try:
            raw = bytes.fromhex(digest)
        except ValueError:
            return None
        blobs.append(
            BlobShard(
                BlobRef(cid=cid_of_sha256(raw), size=shard.size, mime_type=BLOB_MIME_TYPE),
                Checksum.sha256(digest),
            )
        )
    return BlobStorage(tuple(blobs)) if blobs else None


def plan_and_upload(
    client: AtmosphereClient, shards: Sequence[ShardInfo], *, limit: int
) -> BlobStorage:
    """Read, check, hash and upload each shard in turn, the next shard's reading and hashing
    overlapping this one's upload (for a dataset known to be new: nothing is compared first).
    Every check of :func:`plan_blobs` + :func:`upload_blobs` is made: each shard's bytes against
    the index's digest before it is sent, and the PDS's CID against the bytes' CID."""
    check_sizes(shards, limit, False)
    chunk_size = chunk_size_for([max(s.size, 0) for s in shards])

    def one(shard: ShardInfo) -> list[BlobShard]:
        return [
            _upload_planned(client, entry, piece, found)
            for piece, _digest, found, entry in _plan_shard(shard, limit, False, chunk_size)
        ]

    with ThreadPoolExecutor(_UPLOAD_WORKERS, thread_name_prefix="atdata-upload") as pool:
        uploaded = [
            b for blobs in _in_order(pool, one, shards, ahead=_UPLOAD_WORKERS) for b in blobs
        ]
    if not uploaded:
        raise AtmosphereError("a dataset needs at least one shard to publish")
    return BlobStorage(tuple(uploaded))


def _upload_planned(
    client: AtmosphereClient, planned: BlobShard, piece: bytes, side: dict[str, bytes]
) -> BlobShard:
    """Upload one planned blob and its sidecars; the BlobShard as stored."""
    # the small sidecars go beside the shard's blob, not after it
    with ThreadPoolExecutor(2, thread_name_prefix="atdata-sidecar") as pool:
        manifest = pool.submit(_upload_sidecar, client, planned.manifest, side.get(MANIFEST_SUFFIX))
        offsets = pool.submit(_upload_sidecar, client, planned.offsets, side.get(OFFSETS_SUFFIX))
        # the PDS computes the CID of what it received; upload_blob checks it is the planned one
        ref = client.upload_blob(piece, mime_type=planned.blob.mime_type, cid=planned.blob.cid)
        return BlobShard(
            ref,
            planned.checksum,
            manifest=manifest.result(),
            offsets=offsets.result(),
            chunks=planned.chunks,
        )


def plan_blobs(
    shards: Sequence[ShardInfo], *, limit: int, split: bool = False, keep_bytes: int = 512 << 20
) -> BlobPlan:
    """The storageBlobs these shards become (CIDs computed locally; nothing is sent)."""
    check_sizes(shards, limit, split)
    entries = []
    kept: list[bytes] | None = []
    sidecars: list[dict[str, bytes]] = []
    total = 0
    # per-chunk digests let readers stream each blob verified (sources.chunked); the chunk
    # size grows with the dataset so that the record stays small
    chunk_size = chunk_size_for([max(s.size, 0) for s in shards])

    def planned(shard: ShardInfo) -> list[_Planned]:
        return _plan_shard(shard, limit, split, chunk_size)

    with ThreadPoolExecutor(_HASH_WORKERS, thread_name_prefix="atdata-plan") as pool:
        for results in _in_order(pool, planned, shards, ahead=_HASH_WORKERS):
            for piece, _digest, found, entry in results:
                sidecars.append(found)
                entries.append(entry)
                total += len(piece)
                if kept is not None and total <= keep_bytes:
                    kept.append(piece)
                else:
                    kept = None
    if not entries:
        raise AtmosphereError("a dataset needs at least one shard to publish")
    return BlobPlan(BlobStorage(tuple(entries)), kept, sidecars)


def _ref(data: bytes | None) -> BlobRef | None:
    if data is None:
        return None
    digest = hashlib.sha256(data).digest()
    return BlobRef(cid=cid_of_sha256(digest), size=len(data), mime_type=SIDECAR_MIME_TYPE)


def _upload_sidecar(
    client: AtmosphereClient, planned: BlobRef | None, data: bytes | None
) -> BlobRef | None:
    if planned is None or data is None:
        return None
    return client.upload_blob(data, mime_type=planned.mime_type, cid=planned.cid)


def upload_blobs(
    client: AtmosphereClient,
    shards: Sequence[ShardInfo],
    plan: BlobPlan,
    *,
    limit: int,
    split: bool = False,
) -> BlobStorage:
    """Upload the blobs of ``plan`` (from :func:`plan_blobs`); the storage as stored.

    Bytes the plan did not keep are read again and must hash to the planned CIDs.
    """
    pieces: Iterator[tuple[bytes, bytes | None, ShardInfo | None]] = (
        ((p, None, None) for p in plan.pieces)
        if plan.pieces is not None
        else _pieces(shards, limit, split)
    )

    def upload(
        job: tuple[int, BlobShard, tuple[bytes, bytes | None, ShardInfo | None]],
    ) -> BlobShard:
        i, planned, (piece, digest, _) = job
        if digest is not None and cid_of_sha256(digest) != planned.blob.cid:
            raise IntegrityError(
                f"shard bytes changed between planning and upload (now {cid_of_sha256(digest)})",
                shard=planned.blob.cid,
            )
        side = plan.sidecars[i] if i < len(plan.sidecars) else {}
        return _upload_planned(client, planned, piece, side)

    jobs = (
        (i, planned, piece)
        for i, (planned, piece) in enumerate(zip(plan.storage.blobs, pieces, strict=False))
    )
    # several blobs in flight: the PDS hashes and stores one while the next is being sent.
    # Bytes the plan kept are all in memory already; bytes read again are read one at a time.
    workers = _UPLOAD_WORKERS if plan.pieces is not None else 1
    with ThreadPoolExecutor(workers, thread_name_prefix="atdata-upload") as pool:
        uploaded = list(_in_order(pool, upload, jobs, ahead=workers))
    if len(uploaded) != len(plan.storage.blobs) or next(pieces, None) is not None:
        raise AtmosphereError("the shards changed between planning and upload; publish again")
    return BlobStorage(tuple(uploaded))
