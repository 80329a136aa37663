"""A data store in an S3 bucket (AWS, MinIO, R2, Ceph, rclone): ``s3://<bucket>/<prefix>...``.

Shards are written through :class:`S3MultipartSink`, the ``sink_factory`` of ``ShardWriter``:
bytes are buffered up to one part (8 MiB by default); a shard that fits in one part is stored
with a single PUT on commit, a larger one as a multipart upload whose parts are sent while the
writer keeps writing (at most ``max_in_flight`` parts in the air, so memory stays within
``(max_in_flight + 1) * part_size``). Either way the object appears whole on ``commit()`` and
not at all on ``abort()``, which also aborts the multipart upload so no parts are left billed.

The store's sinks never replace an object: the PUT and the CompleteMultipartUpload carry
``If-None-Match: *``, so a server that honours it (AWS S3, MinIO, R2, Ceph, moto) refuses to
overwrite an existing key and the sink raises :class:`StoreError`. Servers that ignore the
header (``rclone serve s3``) overwrite; one that answers ``NotImplemented`` gets the request
again without it. There, no-overwrite rests on the write id alone: every write goes to its own
``<name>/<version>/<write_id>/`` prefix (64 random bits), which no other atdata writer targets.

Configuration is an :class:`~atdata.sources.s3.S3Config` (endpoint, credentials, ...) given to
the store, or the one current when the store is made (see :mod:`atdata.sources.s3`). Reads of
the store's URLs go through :class:`~atdata.sources.s3.S3Source` with the same config.
"""

import contextlib
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..errors import AtdataWarning, InvalidArgumentError, SourceError, StoreError
from ..manifest.format import MANIFEST_SUFFIX
from ..shards.info import ShardInfo
from ..shards.offsets import OFFSETS_SUFFIX
from ..shards.sink import ShardSink
from ..sources.s3 import S3Config, S3Source, current_config, parse_s3_url
from .base import (
    DataStore,
    ShardProblem,
    check_entry_key,
    check_version,
    check_write_id,
    shard_basename,
    validate_dataset_name,
    verify_shards,
    warn_not_owned,
)
from .credentials import config_fields

__all__ = ["DEFAULT_PART_SIZE", "S3DataStore", "S3MultipartSink"]

DEFAULT_PART_SIZE = 8 << 20
MIN_PART_SIZE = 5 << 20
"""S3's smallest part but the last; servers refuse to complete uploads with smaller parts."""
_MAX_PARTS = 10_000
_DELETE_BATCH = 1000


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _describe(exc: BaseException) -> str:
    code = _error_code(exc)
    return f"{code}: {exc}" if code else f"{type(exc).__name__}: {exc}"


class S3MultipartSink:
    """A ShardSink writing ``s3://bucket/key``: one PUT if small, a multipart upload if not.

    Implements ``write`` / ``commit`` / ``abort`` (see the module docstring). Every failure
    raises :class:`StoreError` naming ``location``; a failed commit aborts the upload first.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        max_in_flight: int = 2,
        content_type: str | None = None,
        if_none_match: bool = False,
    ) -> None:
        if part_size < 1:
            raise InvalidArgumentError("part_size must be positive")
        if max_in_flight < 1:
            raise InvalidArgumentError("max_in_flight must be at least 1")
        self.client = client
        self.bucket = bucket
        self.key = key
        self.location = f"s3://{bucket}/{key}"
        self.part_size = part_size
        self.max_in_flight = max_in_flight
        if content_type is None:
            content_type = (
                "application/x-tar" if key.endswith(".tar") else "application/octet-stream"
            )
        self.content_type = content_type
        self.if_none_match = if_none_match
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[Future[dict[str, Any]]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._done = False
        self.size = 0

    # -- ShardSink ----------------------------------------------------------------------------
    def write(self, data: bytes | memoryview) -> None:
        if self._done:
            raise StoreError(f"write to {self.location} after commit or abort")
        view = memoryview(data).cast("B")
        self.size += len(view)
        while len(view):
            room = self.part_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) >= self.part_size:
                self._send_part(bytes(self._buffer))
                self._buffer = bytearray()

    def commit(self) -> None:
        if self._done:
            raise StoreError(f"{self.location} was already committed or aborted")
        try:
            if self._upload_id is None:
                self._create_call(
                    "put_object", Body=bytes(self._buffer), ContentType=self.content_type
                )
            else:
                if self._buffer or not self._parts:
                    self._send_part(bytes(self._buffer))
                parts = [f.result() for f in self._parts]
                self._create_call(
                    "complete_multipart_upload",
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            self.abort()
            raise
        self._finish()

    def abort(self) -> None:
        """Drop what was written; abort the multipart upload (idempotent)."""
        if self._done:
            return
        upload_id = self._upload_id
        self._finish()
        if upload_id is not None:
            try:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=upload_id
                )
            except Exception as exc:  # abort runs while another error propagates: do not mask it
                if _error_code(exc) == "NoSuchUpload":
                    return  # already gone
                warnings.warn(
                    f"could not abort the multipart upload of {self.location} ({_describe(exc)}); "
                    "its parts stay stored until a lifecycle rule or index.gc() removes them",
                    AtdataWarning,
                    stacklevel=2,
                )

    # -- internals -----------------------------------------------------------------------------
    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(Bucket=self.bucket, Key=self.key, **kwargs)
        except Exception as exc:
            raise StoreError(f"writing {self.location} failed: {method}: {_describe(exc)}") from exc

    def _create_call(self, method: str, **kwargs: Any) -> Any:
        """``method`` (the request that makes the object appear), with ``If-None-Match: *``
        when the sink is exclusive: an existing object is never replaced."""
        if not self.if_none_match:
            return self._call(method, **kwargs)
        try:
            return self._call(method, IfNoneMatch="*", **kwargs)
        except StoreError as exc:
            code = _error_code(exc.__cause__) if exc.__cause__ is not None else ""
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise StoreError(
                    f"{self.location} already exists and was not overwritten: another writer "
                    "created it; write again (a new write gets a new location)"
                ) from exc
            if code not in ("NotImplemented", "501"):
                raise
        return self._call(method, **kwargs)  # a server without conditional writes

    def _send_part(self, body: bytes) -> None:
        if self._upload_id is None:
            created = self._call("create_multipart_upload", ContentType=self.content_type)
            self._upload_id = str(created["UploadId"])
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="atdata-s3-upload")
        number = len(self._parts) + 1
        if number > _MAX_PARTS:
            raise StoreError(
                f"{self.location} would need more than {_MAX_PARTS} parts of {self.part_size} "
                "bytes; use a larger part_size or smaller shards (maxsize=)"
            )
        # keep at most max_in_flight parts queued or uploading: bounded memory
        in_flight = [f for f in self._parts if not f.done()]
        while len(in_flight) >= self.max_in_flight:
            in_flight.pop(0).result()
        for f in self._parts:
            if f.done() and f.exception() is not None:
                f.result()  # raises the StoreError of a failed part
        assert self._pool is not None
        self._parts.append(self._pool.submit(self._upload_part, number, body))

    def _upload_part(self, number: int, body: bytes) -> dict[str, Any]:
        response = self._call("upload_part", UploadId=self._upload_id, PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": response["ETag"]}

    def _finish(self) -> None:
        self._done = True
        self._buffer = bytearray()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class S3DataStore(DataStore):
    """Shards under ``s3://<bucket>/<prefix>``:
    ``<prefix><name>/<version>/<write_id>/<base>-000000.tar``.

    ``config`` (an :class:`S3Config`) says how to reach the server; without it the config
    current when the store is made is used (``S3Config()``, boto3's standard chain, outside
    any ``configure`` block). ``endpoint_url`` is a shortcut for ``config.replace(endpoint_url=)``.
    ``S3DataStore(credentials, bucket="b")`` takes the keys and endpoint from a dict
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, optional ``AWS_ENDPOINT_URL``/``endpoint``,
    ``AWS_REGION``/``region``) or a ``.env`` file path (read, never executed; see
    :mod:`atdata.stores.credentials`).

    >>> store = S3DataStore("bucket", "datasets/", config=S3Config(region="us-east-1"))
    >>> store.shard_pattern("team/mnist", 3, "0123456789abcdef")
    's3://bucket/datasets/team/mnist/3/0123456789abcdef/mnist-%06d.tar'
    >>> store.url_for("a/b.tar")
    's3://bucket/datasets/a/b.tar'
    """

    kind = "s3"

    def __init__(
        self,
        bucket_or_credentials: "str | Mapping[str, str] | os.PathLike[str] | None" = None,
        /,
        prefix: str = "",
        *,
        bucket: str | None = None,
        endpoint_url: str | None = None,
        config: S3Config | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        max_in_flight: int = 2,
    ) -> None:
        config = config if config is not None else current_config()
        if bucket is None:  # S3DataStore("bucket", "prefix")
            if not isinstance(bucket_or_credentials, str):
                raise TypeError(
                    "S3DataStore needs a bucket: S3DataStore('bucket') or (creds, bucket=)"
                )
            bucket = bucket_or_credentials
        elif bucket_or_credentials is not None:  # S3DataStore(credentials, bucket="b")
            config = config.replace(**config_fields(bucket_or_credentials))
        if endpoint_url is not None:
            config = config.replace(endpoint_url=endpoint_url)
        try:
            parse_s3_url(f"s3://{bucket}/")
        except SourceError:
            raise InvalidArgumentError(f"bad S3 bucket name {bucket!r}") from None
        prefix = prefix.strip("/")
        if prefix:
            _check_key(prefix, what="prefix")
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        self.config = config
        self.part_size = part_size
        self.max_in_flight = max_in_flight

    def __repr__(self) -> str:
        endpoint = (
            f", endpoint_url={self.config.endpoint_url!r}" if self.config.endpoint_url else ""
        )
        return f"S3DataStore({self.bucket!r}, {self.prefix!r}{endpoint})"

    @property
    def client(self) -> Any:
        return self.config.client()

    # -- DataStore ----------------------------------------------------------------------------
    def shard_pattern(self, name: str, version: int, write_id: str) -> str:
        base = self.url_for(self._version_prefix(name, version) + check_write_id(write_id) + "/")
        return base.replace("%", "%%") + f"{shard_basename(name)}-%06d.tar"

    def open_sink(self, location: str) -> ShardSink:
        """A :class:`S3MultipartSink` for ``location``: an ``s3://`` URL inside this store, or a
        key relative to the prefix."""
        key = self._key_of(location)
        return S3MultipartSink(
            self.client,
            self.bucket,
            key,
            part_size=self.part_size,
            max_in_flight=self.max_in_flight,
            if_none_match=True,
        )

    def owns(self, url: str) -> bool:
        try:
            bucket, key = parse_s3_url(url)
        except SourceError:
            return False
        return bucket == self.bucket and key.startswith(self.prefix) and key != self.prefix

    def delete_shards(self, name: str, version: int, urls: Sequence[str]) -> None:
        keys: list[str] = []
        for url in urls:
            try:
                if not self.owns(url):
                    raise InvalidArgumentError(f"it lies outside {self!r}")
                key = parse_s3_url(url)[1]
                check_entry_key(key[len(self.prefix) :], name, version)
            except (ValueError, SourceError) as exc:
                warn_not_owned(self, url, exc)
                continue
            keys += [key, key + OFFSETS_SUFFIX, key + MANIFEST_SUFFIX]
        self._delete_keys(keys)

    def delete_write(self, name: str, version: int, write_id: str | None) -> None:
        prefix = self.prefix + self._version_prefix(name, version)
        if write_id is not None:
            prefix += check_write_id(write_id) + "/"
        # without a write id (the older layout): only the keys right under <name>/<version>/
        direct = write_id is None
        self._abort_uploads(prefix, direct_only=direct)
        keys: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            options: dict[str, Any] = {"Delimiter": "/"} if direct else {}
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, **options):
                keys += [obj["Key"] for obj in page.get("Contents", ())]
        except Exception as exc:
            raise StoreError(f"cannot list s3://{self.bucket}/{prefix}: {_describe(exc)}") from exc
        if direct:
            keys = [k for k in keys if "/" not in k[len(prefix) :]]
        self._delete_keys(keys)

    def verify(self, shards: Sequence[ShardInfo]) -> list[ShardProblem]:
        """Re-hash ``shards`` through this store's config (not the process-wide one)."""
        return verify_shards(shards, self.open_source)

    # -- the rest of the S3 store API ----------------------------------------------------------
    def url_for(self, key: str) -> str:
        """``s3://<bucket>/<prefix><key>`` for a relative key (validated: no '..', no '//')."""
        _check_key(key, what="key")
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def open_source(self, url: str) -> S3Source:
        """An S3Source for ``url`` reading with this store's config."""
        return S3Source(url, config=self.config)

    def exists(self, url: str) -> bool:
        bucket, key = parse_s3_url(url)
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StoreError(f"cannot check {url}: {_describe(exc)}") from exc
        return True

    def delete(self, urls: Iterable[str]) -> None:
        """Delete the objects at ``urls`` (all inside this store; missing ones are fine)."""
        keys = [self._key_of(url) for url in urls]
        self._delete_keys(keys)

    # -- internals -----------------------------------------------------------------------------
    def _version_prefix(self, name: str, version: int) -> str:
        return f"{validate_dataset_name(name)}/{check_version(version)}/"

    def _key_of(self, location: str) -> str:
        if location[:5].lower() == "s3://":
            if not self.owns(location):
                raise StoreError(
                    f"{location!r} lies outside {self!r}; the store only writes inside it"
                )
            key = parse_s3_url(location)[1]
            _check_key(key[len(self.prefix) :], what="key")
            return key
        _check_key(location, what="key")
        return self.prefix + location

    def _delete_keys(self, keys: list[str]) -> None:
        for i in range(0, len(keys), _DELETE_BATCH):
            batch = keys[i : i + _DELETE_BATCH]
            try:
                response = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            except Exception as exc:
                raise StoreError(
                    f"cannot delete {len(batch)} objects from {self!r}: {_describe(exc)}"
                ) from exc
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise StoreError(
                    f"cannot delete {len(errors)} objects from {self!r}, e.g. "
                    f"s3://{self.bucket}/{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )

    def _abort_uploads(self, prefix: str, *, direct_only: bool = False) -> None:
        """Abort multipart uploads left under ``prefix`` by writers that crashed (only those of
        keys right under it with ``direct_only``)."""
        try:
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in page.get("Uploads", ()):
                    if direct_only and "/" in upload["Key"][len(prefix) :]:
                        continue
                    with contextlib.suppress(Exception):
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
        except Exception as exc:
            if _error_code(exc) == "NoSuchUpload":
                return  # rclone's answer to listing when there are no uploads at all
            raise StoreError(
                f"cannot list uploads under s3://{self.bucket}/{prefix}: {_describe(exc)}"
            ) from exc


def _check_key(key: str, *, what: str) -> None:
    parts = key.split("/")
    bad = (
        not key
        or key.startswith("/")
        or any(p in (".", "..") for p in parts)
        or "//" in key
        or any(ord(c) < 32 for c in key)
        or len(key.encode()) > 1024
    )
    if bad:
        raise StoreError(
            f"bad S3 {what} {key!r}: use '/'-separated names without '.', '..', empty parts or "
            "control characters"
        )
