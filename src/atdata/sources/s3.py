"""Shards in S3 and S3-compatible stores (MinIO, R2, Ceph, rclone): ``s3://bucket/key``.

Importing this module registers the ``s3`` scheme but does not import boto3; an
:class:`S3Source` checks that it is installed (``pip install 'atdata[s3]'``) and the first client
imports it, so a shard served from the shard cache never does.

Configuration is an explicit, immutable :class:`S3Config` (endpoint, region, credentials,
checksum and retry settings). It reaches a source in one of two ways, and no other:

- passed in: ``S3Source(url, config=cfg)``, ``list_s3(glob, config=cfg)``,
  ``S3DataStore(..., config=cfg)``;
- made current for the whole process with ``with atdata.sources.s3.configure(cfg): ...`` (or
  ``configure(endpoint_url=..., ...)``). Sources opened by URL inside the block (``open_source``,
  ``Dataset("s3://...")``), from any thread, use it. Outside every block the current config
  is ``S3Config()``: boto3's standard chain (environment, ``~/.aws``, instance roles).

A source captures the config current when it is constructed. Clients are made once per
(config, AWS settings, process) and shared: boto3 clients are thread-safe, forked workers make
their own, and a later change of what boto3 reads from the environment (``AWS_ENDPOINT_URL_S3``,
``AWS_PROFILE``, keys, the AWS config files...) gets a new client on the next request, also for
sources made before the change (see :meth:`S3Config.client`).

Reads: ``open()`` streams a GET body and, when the transfer breaks, resumes with a ranged GET
from the first byte not yet returned, pinned to the first answer's ETag with ``If-Match`` so a
replaced object is detected. ``read_range`` is a ranged GET resumed the same way. botocore's own
retries (``standard`` mode, ``RetryPolicy.attempts`` attempts) cover each request; atdata adds
the resume of bodies cut short. botocore errors become :class:`SourceError`.

Deadlines: ``connect_timeout`` and ``read_timeout`` (botocore's, per socket operation; default
``$ATDATA_IDLE_TIMEOUT``, else 20 s) and ``total_timeout``, the seconds one GET may wait for the
server while its body streams, resumes and backoff included (default ``$ATDATA_TOTAL_TIMEOUT``,
else 600 s). Bodies are read as bytes arrive, so a server trickling one byte at a time passes
the total deadline and raises :class:`~atdata.sources._retry.DeadlineExceeded` naming the URL.
"""

import contextlib
import hashlib
import os
import re
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Literal, cast

from .._optional import check_installed, require
from ..errors import InvalidArgumentError, SourceError
from ._retry import Body, Deadlines, ResumableStream, RetryPolicy, Transient
from .base import read_capped, read_range_via, register_scheme

__all__ = [
    "S3Config",
    "S3Source",
    "configure",
    "current_config",
    "expand_s3_glob",
    "list_s3",
    "parse_s3_url",
]

_GLOB_CHARS = re.compile(r"[*?\[]")
_READ_CHUNK = 1 << 20  # most bytes one read takes (read1: what has arrived, up to this)


@dataclass(frozen=True)
class S3Config:
    """How to reach S3: endpoint, region, credentials, request settings. Immutable.

    Leave a field None to let boto3's standard chain decide it (``AWS_ACCESS_KEY_ID``,
    ``AWS_PROFILE``, ``~/.aws/config``, instance roles, ``AWS_ENDPOINT_URL_S3``...).
    ``anonymous`` sends unsigned requests (public buckets). For servers that reject the newer
    default integrity checksums (older MinIO, rclone), set both checksum fields to
    ``"when_required"``.
    """

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    anonymous: bool = False
    addressing_style: Literal["auto", "path", "virtual"] | None = None
    request_checksum_calculation: Literal["when_supported", "when_required"] | None = None
    response_checksum_validation: Literal["when_supported", "when_required"] | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connect_timeout: float | None = None
    """Seconds to connect (None: ``$ATDATA_IDLE_TIMEOUT``, else 20)."""
    read_timeout: float | None = None
    """Seconds without a byte (None: ``$ATDATA_IDLE_TIMEOUT``, else 20)."""
    total_timeout: float | None = None
    """Seconds one GET may wait for the server in all (None: ``$ATDATA_TOTAL_TIMEOUT``, else 600)."""
    max_pool_connections: int = 32

    @property
    def deadlines(self) -> Deadlines:
        """The idle (read) and total deadlines of this config, the environment filling gaps."""
        return Deadlines.resolve(self.read_timeout, self.total_timeout)

    def replace(self, **changes: Any) -> "S3Config":
        """A copy with ``changes`` applied."""
        return replace(self, **changes)

    @property
    def carries_credentials(self) -> bool:
        """Whether keys are set on this config (rather than found in the environment)."""
        return any(
            v is not None for v in (self.access_key_id, self.secret_access_key, self.session_token)
        )

    def without_credentials(self) -> "S3Config":
        """A copy with no keys: whoever uses it finds credentials in its own environment,
        profile or instance role (for configs sent to other processes or machines)."""
        return replace(self, access_key_id=None, secret_access_key=None, session_token=None)

    def client(self) -> Any:
        """The boto3 S3 client for this config and the environment boto3 reads now.

        Clients are made once per (config, AWS settings, process) and shared. The AWS settings
        are every ``AWS_*`` environment variable and the stat of the AWS config and credentials
        files, folded into a SHA-256 digest (so no key is held in the cache in clear): a
        changed ``AWS_ENDPOINT_URL_S3``, region, profile or key gets a new client, not the one
        made before the change."""
        pid = os.getpid()
        settings = _aws_settings_digest()
        with _CLIENTS_LOCK:
            cached = _CLIENTS.get(self)
            if cached is not None and cached[:2] == (pid, settings):
                return cached[2]
        client = self._make_client()
        with _CLIENTS_LOCK:
            cached = _CLIENTS.get(self)
            if cached is not None and cached[:2] == (pid, settings):
                return cached[2]
            _CLIENTS[self] = (pid, settings, client)  # replaces a client of older settings
        return client

    def _make_client(self) -> Any:
        boto3 = require("boto3", "s3")
        botocore_config = require("botocore.config", "s3")
        botocore_exceptions = require("botocore.exceptions", "s3")
        deadlines = self.deadlines
        options: dict[str, Any] = {
            "retries": {"max_attempts": self.retry.attempts, "mode": "standard"},
            "connect_timeout": Deadlines.resolve(self.connect_timeout).idle,
            "read_timeout": deadlines.idle,
            "max_pool_connections": self.max_pool_connections,
        }
        if self.addressing_style is not None:
            options["s3"] = {"addressing_style": self.addressing_style}
        if self.request_checksum_calculation is not None:
            options["request_checksum_calculation"] = self.request_checksum_calculation
        if self.response_checksum_validation is not None:
            options["response_checksum_validation"] = self.response_checksum_validation
        if self.anonymous:
            options["signature_version"] = require("botocore", "s3").UNSIGNED
        try:
            session = boto3.session.Session(
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=self.secret_access_key,
                aws_session_token=self.session_token,
                region_name=self.region,
                profile_name=self.profile,
            )
            return session.client(
                "s3", endpoint_url=self.endpoint_url, config=botocore_config.Config(**options)
            )
        except botocore_exceptions.BotoCoreError as exc:
            raise SourceError(f"cannot make an S3 client for {self!r}: {exc}") from exc


_CLIENTS: "weakref.WeakKeyDictionary[S3Config, tuple[int, bytes, Any]]" = (
    weakref.WeakKeyDictionary()
)
_CLIENTS_LOCK = threading.Lock()


def _aws_settings_digest() -> bytes:
    """A SHA-256 digest of what boto3 reads from outside a config when it makes a client: the
    ``AWS_*`` environment variables (names and values) and the size and mtime of the AWS config
    and credentials files. Only the digest is kept, so no secret is held or shown in clear."""
    digest = hashlib.sha256()
    # Keys first, then only the few AWS_ values (a mapping's items() looks every value up).
    env: Any = os.environb if os.supports_bytes_environ else os.environ
    prefix = b"AWS_" if os.supports_bytes_environ else "AWS_"
    for name in sorted(k for k in env if k.startswith(prefix)):
        value = env.get(name)
        if value is not None:
            pair = (name, value) if isinstance(name, bytes) else (name.encode(), value.encode())
            digest.update(b"%d:%s=%d:%s\n" % (len(pair[0]), pair[0], len(pair[1]), pair[1]))
    home = os.path.expanduser("~")
    for var, default in (
        ("AWS_CONFIG_FILE", os.path.join(home, ".aws", "config")),
        ("AWS_SHARED_CREDENTIALS_FILE", os.path.join(home, ".aws", "credentials")),
    ):
        try:
            st = os.stat(os.path.expanduser(os.environ.get(var) or default))
            digest.update(f"{var}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}\n".encode())
        except OSError:
            digest.update(f"{var}:-\n".encode())
    return digest.digest()


_DEFAULT = S3Config()


class _Entry:
    """One active :func:`configure` block (identity matters: equal configs may nest)."""

    def __init__(self, config: S3Config) -> None:
        self.config = config


_ACTIVE: list[_Entry] = []
_ACTIVE_LOCK = threading.Lock()


def current_config() -> S3Config:
    """The config of the innermost active :func:`configure` block, else ``S3Config()``."""
    with _ACTIVE_LOCK:
        return _ACTIVE[-1].config if _ACTIVE else _DEFAULT


@contextlib.contextmanager
def configure(config: S3Config | None = None, **fields: Any) -> Iterator[S3Config]:
    """Make ``config`` (or ``S3Config(**fields)``) current, process-wide, inside the block.

    >>> with configure(endpoint_url="http://127.0.0.1:9000") as cfg:
    ...     current_config() is cfg
    True
    >>> current_config().endpoint_url is None
    True

    Blocks nest; leaving one restores what was current before it, even when blocks in
    different threads end out of order.
    """
    if config is None:
        config = S3Config(**fields)
    elif fields:
        config = replace(config, **fields)
    entry = _Entry(config)
    with _ACTIVE_LOCK:
        _ACTIVE.append(entry)
    try:
        yield config
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.remove(entry)


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key``; the key may be empty (``s3://bucket/``)."""
    if not url[:5].lower() == "s3://":
        raise SourceError(f"not an s3:// URL: {url!r}")
    bucket, _, key = url[5:].partition("/")
    if not bucket or not re.fullmatch(r"[A-Za-z0-9._\-]{1,255}", bucket):
        raise SourceError(f"bad bucket name in {url!r}")
    return bucket, key


class _NotFound(SourceError):
    pass


class S3Source:
    """Read access to one object ``s3://bucket/key`` (see the module docstring)."""

    def __init__(self, url: str, *, config: S3Config | None = None) -> None:
        check_installed("boto3", "s3")
        self.url = url
        self.bucket, self.key = parse_s3_url(url)
        if not self.key or self.key.endswith("/"):
            raise SourceError(f"{url!r} names no object (the key is empty or ends with '/')")
        self.config = config if config is not None else current_config()

    def __repr__(self) -> str:
        return f"S3Source({self.url!r})"

    @property
    def client(self) -> Any:
        return self.config.client()

    def local_path(self) -> str | None:
        return None

    def open(self) -> BinaryIO:
        """A stream of the whole object that resumes after broken transfers."""
        return cast(BinaryIO, self._stream(self.key))

    def read_range(self, start: int, length: int) -> bytes:
        """Exactly ``length`` bytes from ``start`` (one ranged GET, resumed if cut short)."""
        return read_range_via(
            lambda s, e: self._stream(self.key, start=s, end=e), self.url, start, length
        )

    def read_sidecar(self, suffix: str) -> bytes | None:
        """The object ``key + suffix``, or None when there is none."""
        try:
            with self._stream(self.key + suffix) as stream:
                return read_capped(cast(BinaryIO, stream), f"s3://{self.bucket}/{self.key}{suffix}")
        except _NotFound:
            return None

    def size(self) -> int:
        """The object's size in bytes (a HEAD request)."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            raise _translate(exc, f"HEAD {self.url}") from exc
        return int(head["ContentLength"])

    def _stream(self, key: str, *, start: int = 0, end: int | None = None) -> ResumableStream:
        url = f"s3://{self.bucket}/{key}"
        opener = _S3Opener(self.client, self.bucket, key, url)
        return ResumableStream(
            url, opener, self.config.retry, start=start, end=end, deadlines=self.config.deadlines
        )


class _S3Opener:
    def __init__(self, client: Any, bucket: str, key: str, url: str) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.url = url
        self.etag: str | None = None

    def __call__(self, pos: int, end: int | None) -> Body:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if pos > 0 or end is not None:
            kwargs["Range"] = f"bytes={pos}-" + ("" if end is None else str(end - 1))
        if self.etag is not None:
            kwargs["IfMatch"] = self.etag
        try:
            response = self.client.get_object(**kwargs)
        except Exception as exc:
            raise _translate(exc, f"GET {self.url}", pos=pos) from exc
        etag = response.get("ETag")
        if self.etag is None:
            self.etag = etag
        body = response["Body"]
        content_range = response.get("ContentRange")
        if content_range:
            first, total = _content_range(content_range, self.url)
            if first != pos:
                body.close()
                raise SourceError(f"{self.url}: asked for bytes from {pos}, got them from {first}")
            return _S3Body(body, first, total)
        # no Content-Range: a server that ignored Range sent the whole object (the stream then
        # discards the bytes before pos)
        length = response.get("ContentLength")
        return _S3Body(body, 0, int(length) if length is not None else None)


class _S3Body:
    def __init__(self, body: Any, offset: int, total: int | None) -> None:
        self.body = body
        self.offset = offset
        self.total = total
        # read what has arrived (one socket read), not "until n bytes": a body trickling in
        # must come back to the stream between bytes so that its total deadline is checked.
        # urllib3 2 has read1; botocore's StreamingBody keeps the urllib3 response as
        # _raw_stream. The stream checks the length; a body that validates a response checksum
        # (StreamingChecksumBody) still sees every byte and validates at the end.
        raw = getattr(body, "_raw_stream", None)
        read1 = getattr(raw, "read1", None)
        self._checksum = getattr(body, "_checksum", None)
        self._validate = getattr(body, "_validate_checksum", None)
        if read1 is None or (self._checksum is None) != (self._validate is None):
            read1, self._checksum, self._validate = body.read, None, None
        self._read = read1

    def read(self, n: int) -> bytes:
        # modest reads: a read that breaks off loses what it had received, so keep them small
        try:
            data: bytes = self._read(min(n, _READ_CHUNK))
            if self._checksum is not None:
                if data:
                    self._checksum.update(data)
                elif self._validate is not None:
                    self._validate()
        except Exception as exc:  # urllib3/botocore read errors, timeouts, resets
            if _is_stream_failure(exc):
                idle = "timeout" in type(exc).__name__.lower() or "timed out" in str(exc)
                raise Transient(f"{type(exc).__name__}: {exc}", idle=idle) from exc
            raise
        return data

    def close(self) -> None:
        self.body.close()


def _is_stream_failure(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return True
    module = type(exc).__module__
    return module.startswith(("botocore", "urllib3"))


def _content_range(value: str, url: str) -> tuple[int, int | None]:
    try:
        unit, _, spec = value.strip().partition(" ")
        span, _, total = spec.partition("/")
        if unit.lower() != "bytes":
            raise InvalidArgumentError(unit)
        return int(span.partition("-")[0]), (None if total.strip() == "*" else int(total))
    except ValueError:
        raise SourceError(f"{url}: bad Content-Range {value!r}") from None


def _translate(exc: BaseException, what: str, *, pos: int = 0) -> SourceError:
    """A SourceError for a botocore failure of ``what`` (raise it ``from exc``)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        error = response.get("Error", {})
        code = str(error.get("Code", "")) or "?"
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = error.get("Message") or ""
        if code in ("NoSuchKey", "NotFound", "404"):
            return _NotFound(f"{what}: no such object (HTTP 404)")
        if code == "NoSuchBucket":
            return SourceError(f"{what}: the bucket does not exist")
        if code in ("InvalidRange", "416"):
            return SourceError(f"{what}: bytes from {pos} lie beyond its end (HTTP 416)")
        if code in ("PreconditionFailed", "412"):
            return SourceError(f"{what}: the object changed while it was being read")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return SourceError(
                f"{what}: access denied ({code}); check the credentials and endpoint of the "
                "S3Config in use"
            )
        return SourceError(f"{what}: {code} (HTTP {status}) {message}".rstrip())
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return SourceError(
            f"{what}: no AWS credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a "
            "profile, or pass S3Config(access_key_id=..., secret_access_key=...) "
            "(or anonymous=True for public buckets)"
        )
    if isinstance(exc, SourceError):
        return exc
    return SourceError(f"{what} failed: {name}: {exc}")


# ------------------------------------------------------------------------------------ listing
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Shell-style glob over keys: ``*`` and ``?`` stay within a path segment, ``**`` does not."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern.startswith(("[!", "[^"), i) else i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def list_s3(url_glob: str, *, config: S3Config | None = None, page_size: int = 1000) -> list[str]:
    """``s3://`` URLs of the objects whose keys match the glob, sorted; [] when none match.

    ``s3://bucket/train/shard-*.tar`` lists the prefix before the first wildcard (paginated,
    ``page_size`` keys a request) and keeps the keys that match; ``*`` and ``?`` do not cross a
    ``/``, ``**`` does. Braces are not expanded here.
    """
    bucket, pattern = parse_s3_url(url_glob)
    m = _GLOB_CHARS.search(pattern)
    prefix = pattern if m is None else pattern[: m.start()]
    rest = "" if m is None else pattern[m.start() :]
    regex = _glob_regex(pattern)
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if "/" not in rest and "**" not in rest:
        kwargs["Delimiter"] = "/"  # the match cannot be deeper: do not list what lies below
    client = (config if config is not None else current_config()).client()
    found: list[str] = []
    try:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(**kwargs, PaginationConfig={"PageSize": page_size}):
            for obj in page.get("Contents", ()):
                key = obj["Key"]
                if regex.match(key):
                    found.append(f"s3://{bucket}/{key}")
    except Exception as exc:
        raise _translate(exc, f"listing {url_glob}") from exc
    return sorted(found)


def expand_s3_glob(url: str, *, config: S3Config | None = None) -> list[str]:
    """``[url]`` when it has no wildcard (no request made), else the objects :func:`list_s3`
    finds (the caller, ``shards.urls``, leaves out the ``.idx`` sidecars of listed shards).

    SourceError when a wildcard matches nothing, naming the pattern.
    """
    _bucket, key = parse_s3_url(url)
    if _GLOB_CHARS.search(key) is None:
        return [url]
    urls = list_s3(url, config=config)
    if not urls:
        raise SourceError(f"no S3 objects match {url!r}")
    return urls


register_scheme("s3", S3Source)
