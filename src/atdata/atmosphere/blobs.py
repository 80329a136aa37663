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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import AtmosphereError, IntegrityError, SourceError
from ..net.ids import cid_of_sha256
from ..shards.info import Checksum, ShardInfo
from ..shards.reader import iter_members
from ..shards.tar import BLOCK
from ..sources import open_source
from .client import AtmosphereClient
from .storage import BLOB_MIME_TYPE, BlobRef, BlobShard, BlobStorage

__all__ = ["BlobPlan", "plan_blobs", "sha256_of", "split_shard", "upload_blobs"]

_END_OF_ARCHIVE = bytes(2 * BLOCK)


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


def _pieces(shards: Sequence[ShardInfo], limit: int, split: bool) -> Iterator[tuple[bytes, bytes]]:
    """(bytes, sha256 digest) of each blob the shards become, in order."""
    for shard in shards:
        data, digest = _read(shard)
        if len(data) <= limit:
            yield data, digest
            continue
        if not split:
            raise AtmosphereError(
                f"{shard.url} is {len(data)} bytes, over the {limit}-byte blob limit of this PDS "
                "and lexicon; pass split=True to cut it at sample boundaries, or publish it by "
                "http(s)/S3 URL instead (nothing was uploaded)"
            )
        for piece in split_shard(data, limit, where=shard.url):
            yield piece, hashlib.sha256(piece).digest()


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


def plan_blobs(
    shards: Sequence[ShardInfo], *, limit: int, split: bool = False, keep_bytes: int = 512 << 20
) -> BlobPlan:
    """The storageBlobs these shards become (CIDs computed locally; nothing is sent)."""
    check_sizes(shards, limit, split)
    entries = []
    kept: list[bytes] | None = []
    total = 0
    for piece, digest in _pieces(shards, limit, split):
        entries.append(
            BlobShard(
                BlobRef(cid=cid_of_sha256(digest), size=len(piece), mime_type=BLOB_MIME_TYPE),
                Checksum.sha256(digest.hex()),
            )
        )
        total += len(piece)
        if kept is not None and total <= keep_bytes:
            kept.append(piece)
        else:
            kept = None
    if not entries:
        raise AtmosphereError("a dataset needs at least one shard to publish")
    return BlobPlan(BlobStorage(tuple(entries)), kept)


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
    uploaded = []
    pieces: Iterator[tuple[bytes, bytes | None]] = (
        ((p, None) for p in plan.pieces)
        if plan.pieces is not None
        else _pieces(shards, limit, split)
    )
    for planned, (piece, digest) in zip(plan.storage.blobs, pieces, strict=False):
        if digest is not None and cid_of_sha256(digest) != planned.blob.cid:
            raise IntegrityError(
                f"shard bytes changed between planning and upload (now {cid_of_sha256(digest)})",
                shard=planned.blob.cid,
            )
        # the PDS computes the CID of what it received; upload_blob checks it is the planned one
        ref = client.upload_blob(piece, mime_type=planned.blob.mime_type, cid=planned.blob.cid)
        uploaded.append(BlobShard(ref, planned.checksum))
    if len(uploaded) != len(plan.storage.blobs) or next(pieces, None) is not None:
        raise AtmosphereError("the shards changed between planning and upload; publish again")
    return BlobStorage(tuple(uploaded))
