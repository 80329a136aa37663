"""Where a published dataset's shards are: the ``storage`` union of an entry record.

``storageHttp`` (http(s) URLs), ``storageS3`` (keys in one bucket) and ``storageBlobs`` (blobs in
the publisher's repository), each shard with its :class:`~atdata.shards.info.Checksum`. Reading
accepts only what is safe to open: http(s) URLs without credentials or control characters,
relative S3 keys without ``..``, believable bucket and region names, hex digests of the length
their algorithm gives.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias
from urllib.parse import quote, urlsplit

from ..shards.info import Checksum
from ..sources.at import blob_url
from ..sources.chunked import ChunkDigests
from ._fields import JsonObject, each, fail, json_field
from .lexicon import NAMESPACE

__all__ = [
    "BLOB_MIME_TYPE",
    "STORAGE_BLOBS",
    "STORAGE_HTTP",
    "STORAGE_S3",
    "BlobRef",
    "BlobShard",
    "BlobStorage",
    "HttpShard",
    "HttpStorage",
    "S3Shard",
    "S3Storage",
    "Storage",
    "check_http_url",
    "check_relative_path",
    "checksum_from_record",
    "parse_storage",
]

STORAGE_HTTP = f"{NAMESPACE}.storageHttp"
STORAGE_S3 = f"{NAMESPACE}.storageS3"
STORAGE_BLOBS = f"{NAMESPACE}.storageBlobs"
BLOB_MIME_TYPE = "application/x-tar"

_HEX = re.compile(r"^[0-9a-f]+\Z")
_ALGORITHM = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}\Z")
_DIGEST_HEX_LEN = {"sha256": 64, "sha512": 128, "blake3": 64, "sha1": 40, "md5": 32}
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]\Z")
_REGION = re.compile(r"^[a-z0-9-]{1,50}\Z")


# ---------------------------------------------------------------------------------- checks
def check_http_url(url: str, path: str, where: str | None) -> str:
    """``url`` if it is an http(s) URL atdata may fetch: a host, no credentials, no control
    characters or whitespace, a valid port."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail(
            f"{url!r:.120} is not an http(s) URL; shards are only fetched over http(s)", path, where
        )
    if parts.username is not None or parts.password is not None:
        raise fail("URLs in records must not carry credentials", path, where)
    if re.search(r"[\s\x00-\x1f\x7f\\]", url):
        raise fail(f"{url!r:.120} contains whitespace or control characters", path, where)
    try:
        parts.port  # noqa: B018
    except ValueError:
        raise fail(f"{url!r:.120} has a bad port", path, where) from None
    return url


def check_relative_path(value: str, path: str, where: str | None, what: str) -> str:
    """``value`` if it is a relative ``/``-separated path without ``.``/``..`` parts."""
    segments = value.split("/")
    if (
        not value
        or value.startswith("/")
        or "\\" in value
        or any(s in (".", "..") for s in segments)
        or re.search(r"[\x00-\x1f\x7f]", value)
    ):
        raise fail(f"{what} {value!r:.120} must be a relative path without '..'", path, where)
    return value


def checksum_from_record(data: Mapping[str, Any], path: str, where: str | None) -> Checksum:
    """The :class:`~atdata.shards.info.Checksum` at ``path`` of a record, checked: a known-form
    algorithm name and a hex digest of that algorithm's length (both lowercased)."""
    algorithm, digest = str(data["algorithm"]).lower(), str(data["digest"]).lower()
    if _ALGORITHM.match(algorithm) is None:
        raise fail(f"unknown checksum algorithm {algorithm!r:.40}", f"{path}.algorithm", where)
    want = _DIGEST_HEX_LEN.get(algorithm)
    if _HEX.match(digest) is None or (want is not None and len(digest) != want):
        raise fail(f"{digest!r:.140} is not a hex {algorithm} digest", f"{path}.digest", where)
    return Checksum(algorithm, digest)


def _optional_checksum(data: Any, path: str, where: str | None) -> Checksum | None:
    return checksum_from_record(data, path, where) if data else None


def _s3_key(value: str, path: str, where: str | None) -> str:
    return check_relative_path(value, path, where, "S3 key")


def _bucket(value: str, path: str, where: str | None) -> str:
    if _BUCKET.match(value) is None or ".." in value:
        raise fail(f"{value!r:.80} is not an S3 bucket name", path, where)
    return value


def _region(value: str, path: str, where: str | None) -> str:
    if _REGION.match(value) is None:
        raise fail(f"{value!r:.60} is not a region name", path, where)
    return value


def _endpoint(value: str, path: str, where: str | None) -> str:
    return check_http_url(value, path, where)


def _checksum_dict(checksum: Checksum) -> dict[str, str]:
    return checksum.to_dict()


def _dump_all(items: tuple[JsonObject, ...]) -> list[dict[str, Any]]:
    return [item.to_dict() for item in items]


def _blob_dict(blob: "BlobRef") -> dict[str, Any]:
    return blob.to_dict()


def _chunks(data: Any, path: str, where: str | None) -> ChunkDigests:
    if not isinstance(data, Mapping) or data.get("algorithm") != "sha256":
        raise fail("chunk digests must be {algorithm: 'sha256', size, digests}", path, where)
    size, text = data.get("size"), data.get("digests")
    if not isinstance(size, int) or isinstance(size, bool) or not isinstance(text, str):
        raise fail("chunk digests need an integer size and base64 digests", path, where)
    try:
        return ChunkDigests.from_text(size, text)
    except ValueError as exc:
        raise fail(str(exc), path, where) from None


def _chunks_dict(chunks: ChunkDigests) -> dict[str, Any]:
    return {"algorithm": "sha256", "size": chunks.chunk_size, "digests": chunks.to_text()}


# ---------------------------------------------------------------------------------- shapes
@dataclass(frozen=True)
class BlobRef(JsonObject):
    """A blob in a repository: its CID, size in bytes and MIME type."""

    cid: str = json_field("ref.$link")
    size: int = json_field("size")
    mime_type: str = json_field("mimeType", default=BLOB_MIME_TYPE)

    TYPE: ClassVar[str | None] = "blob"


@dataclass(frozen=True)
class HttpShard(JsonObject):
    url: str = json_field("url", parse=check_http_url)
    checksum: Checksum = json_field("checksum", parse=checksum_from_record, dump=_checksum_dict)


@dataclass(frozen=True)
class HttpStorage(JsonObject):
    """Shards served over http(s)."""

    shards: tuple[HttpShard, ...] = json_field(
        "shards", parse=each(HttpShard.parser()), dump=_dump_all
    )

    TYPE: ClassVar[str | None] = STORAGE_HTTP

    def shard_urls(self, did: str, pds: str | None = None) -> list[str]:
        return [s.url for s in self.shards]

    def checksums(self) -> list[Checksum | None]:
        return [s.checksum for s in self.shards]


@dataclass(frozen=True)
class S3Shard(JsonObject):
    key: str = json_field("key", parse=_s3_key)
    checksum: Checksum = json_field("checksum", parse=checksum_from_record, dump=_checksum_dict)


@dataclass(frozen=True)
class S3Storage(JsonObject):
    """Shards as objects in one S3 bucket (``endpoint`` for S3-compatible services)."""

    bucket: str = json_field("bucket", parse=_bucket)
    shards: tuple[S3Shard, ...] = json_field("shards", parse=each(S3Shard.parser()), dump=_dump_all)
    region: str | None = json_field("region", parse=_region, default=None)
    endpoint: str | None = json_field("endpoint", parse=_endpoint, default=None)

    TYPE: ClassVar[str | None] = STORAGE_S3
    READ_FIRST: ClassVar[tuple[str, ...]] = ("bucket", "region", "endpoint")

    def shard_urls(self, did: str, pds: str | None = None) -> list[str]:
        return [f"s3://{self.bucket}/{quote(s.key, safe='/-_.~')}" for s in self.shards]

    def checksums(self) -> list[Checksum | None]:
        return [s.checksum for s in self.shards]


@dataclass(frozen=True)
class BlobShard(JsonObject):
    blob: BlobRef = json_field("blob", parse=BlobRef.parser(), dump=_blob_dict)
    checksum: Checksum | None = json_field(
        "checksum", parse=_optional_checksum, dump=_checksum_dict, default=None
    )
    #: the shard's manifest (``<shard>.manifest``) held as a blob of the same repository
    manifest: BlobRef | None = json_field(
        "manifest", parse=BlobRef.parser(), dump=_blob_dict, default=None
    )
    #: the shard's offset index (``<shard>.idx``) held as a blob, so a query that prunes the
    #: shard by its manifest need not download it to count its samples
    offsets: BlobRef | None = json_field(
        "offsets", parse=BlobRef.parser(), dump=_blob_dict, default=None
    )
    #: the sha256 of each chunk of the blob, so readers can use verified chunks as they arrive
    #: (readers that do not know the field, atdata 0.7 included, ignore it)
    chunks: ChunkDigests | None = json_field(
        "chunks", parse=_chunks, dump=_chunks_dict, default=None
    )

    def sidecars(self) -> dict[str, str]:
        """Sidecar suffix -> CID of the blob holding it."""
        out: dict[str, str] = {}
        if self.manifest is not None:
            out[".manifest"] = self.manifest.cid
        if self.offsets is not None:
            out[".idx"] = self.offsets.cid
        return out


@dataclass(frozen=True)
class BlobStorage(JsonObject):
    """Shards held as blobs in the publishing account's repository."""

    blobs: tuple[BlobShard, ...] = json_field(
        "blobs", parse=each(BlobShard.parser()), dump=_dump_all
    )

    TYPE: ClassVar[str | None] = STORAGE_BLOBS

    def shard_urls(self, did: str, pds: str | None = None) -> list[str]:
        """``at://<did>/blob/<cid>[?pds=...]`` for each blob (see :mod:`atdata.sources.at`)."""
        return [blob_url(did, b.blob.cid, pds, b.sidecars()) for b in self.blobs]

    def checksums(self) -> list[Checksum | None]:
        return [b.checksum for b in self.blobs]


Storage: TypeAlias = HttpStorage | S3Storage | BlobStorage
_STORAGE: dict[str, type[HttpStorage] | type[S3Storage] | type[BlobStorage]] = {
    STORAGE_HTTP: HttpStorage,
    STORAGE_S3: S3Storage,
    STORAGE_BLOBS: BlobStorage,
}


def parse_storage(data: Mapping[str, Any], path: str, where: str | None) -> Storage:
    """The storage an entry's ``storage`` object describes, by its ``$type``."""
    kind = _STORAGE.get(data["$type"])
    if kind is None:
        raise fail(f"storage type {data['$type']!r:.80} is not supported", f"{path}.$type", where)
    return kind.from_dict(data, path, where)
