"""Shards stored as ATProto blobs: ``at://<did>/blob/<cid>[?pds=<endpoint>]``.

A blob is named by the DID of the repository that holds it and its CID; the URL form is::

    at://did:plc:abc.../blob/bafkrei...                       # PDS found through a locator
    at://did:plc:abc.../blob/bafkrei...?pds=https%3A%2F%2Fpds.example.com

The middle segment ``blob`` is not an NSID, so these URLs never collide with record URIs
(``at://<did>/<collection>/<rkey>``), which this source refuses. The optional ``pds`` query
parameter is the owner's PDS base URL (percent-encoded); without it the PDS is found by the
*PDS locator* given to :class:`AtBlobSource`, or the one made current with
:func:`use_pds_locator` (``atdata.atmosphere.Resolver.activate()`` does that). Whatever server
answers, the bytes are only trusted after they hash to the CID: blob CIDs are CIDv1 with the raw
codec (0x55) and a sha2-256 multihash, and a mismatch raises :class:`IntegrityError` before any
byte is handed on. Bytes are fetched (stdlib ``http.client``, no proxies) with
``com.atproto.sync.getBlob?did=...&cid=...`` into an unlinked temporary file, hashed on the way
(a :class:`~atdata.sources.spool.Spool`), so a blob never stays in memory: a stream from
``open()`` owns its download and frees it when closed; random access (``read_range``) keeps one
verified download on disk for the source's lifetime.

A download has the deadlines of the other remote sources
(:class:`~atdata.sources._retry.Deadlines`): ``timeout`` seconds to connect and without a byte
(default ``$ATDATA_IDLE_TIMEOUT``, else 20), ``total_timeout`` seconds for the whole download,
headers and redirects included (default ``$ATDATA_TOTAL_TIMEOUT``, else 600). Passing either
raises :class:`~atdata.sources._retry.DeadlineExceeded` (a SourceError) naming the blob URL and
the deadline, so a PDS trickling or stalling a blob cannot hold a reader forever.
"""

import contextlib
import contextvars
import hashlib
import http.client
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO
from urllib.parse import SplitResult, parse_qs, quote, urlencode, urljoin, urlsplit

from ..errors import IntegrityError, InvalidArgumentError, SourceError
from ._retry import IDLE_TIMEOUT_ENV, TOTAL_TIMEOUT_ENV, DeadlineExceeded, Deadlines
from .base import ShardSource, register_scheme
from .spool import STREAM_IN_MEMORY_BYTES, Spool, SpoolWriter, kept_spools

__all__ = [
    "AtBlobSource",
    "DEFAULT_MAX_BLOB_BYTES",
    "PdsLocator",
    "blob_cid",
    "blob_url",
    "cid_of_sha256",
    "parse_blob_url",
    "plain_http_base",
    "use_pds_locator",
    "verify_blob",
]

#: Largest blob an AtBlobSource downloads unless told otherwise.
DEFAULT_MAX_BLOB_BYTES = 1 << 30
RAW_CODEC = 0x55
_READ = 4 << 20
SHA2_256 = 0x12

PdsLocator = Callable[[str], str]
"""Maps a DID to the base URL of the PDS hosting its repository."""

_CURRENT_LOCATOR: contextvars.ContextVar[PdsLocator | None] = contextvars.ContextVar(
    "atdata_pds_locator", default=None
)
_DID = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]\Z")
_CID = re.compile(r"^b[a-z2-7]{10,200}\Z")
_URL = re.compile(r"^at://([^/?#]+)/blob/([^/?#]+)(?:\?([^#]*))?\Z")


# ------------------------------------------------------------------------------------ CIDs
def blob_cid(data: bytes | memoryview) -> str:
    """The CID a PDS gives these bytes as a blob: CIDv1, raw codec, sha2-256, base32."""
    return cid_of_sha256(hashlib.sha256(data).digest())


def cid_of_sha256(digest: bytes) -> str:
    """The raw-codec CIDv1 of bytes whose sha256 digest is ``digest``."""
    import libipld

    if len(digest) != 32:
        raise InvalidArgumentError("a sha256 digest is 32 bytes")
    cid: str = libipld.encode_cid(bytes([1, RAW_CODEC, SHA2_256, 32]) + digest)
    return cid


def _cid_digest(cid: str, where: str) -> bytes:
    """The sha2-256 digest a blob CID commits to; IntegrityError for anything else."""
    import libipld

    if not isinstance(cid, str) or _CID.match(cid) is None:
        raise IntegrityError(f"{cid!r:.100} is not a base32 CIDv1", shard=where)
    try:
        parsed = libipld.decode_cid(cid)
    except Exception as exc:
        raise IntegrityError(f"{cid!r} is not a valid CID: {exc}", shard=where) from None
    mh = parsed["hash"]
    if parsed["version"] != 1 or mh["code"] != SHA2_256 or mh["size"] != 32:
        raise IntegrityError(
            f"CID {cid} is not a CIDv1 with a sha2-256 hash; cannot verify it", shard=where
        )
    if parsed["codec"] != RAW_CODEC:
        raise IntegrityError(
            f"CID {cid} has codec 0x{parsed['codec']:x}, not raw (0x55) as blobs do", shard=where
        )
    digest: bytes = mh["digest"]
    return digest


def verify_blob(data: bytes | memoryview, cid: str, *, where: str | None = None) -> None:
    """Raise IntegrityError unless ``data`` is exactly the blob ``cid`` names."""
    want = _cid_digest(cid, where or cid)
    got = hashlib.sha256(data).digest()
    if got != want:
        raise IntegrityError(
            f"blob bytes do not match CID {cid} (sha256 {got.hex()}, expected {want.hex()}); "
            "the server sent different or corrupted data",
            shard=where or cid,
        )


# ------------------------------------------------------------------------------------ URLs
def blob_url(did: str, cid: str, pds: str | None = None) -> str:
    """The source URL of blob ``cid`` in ``did``'s repository (optionally pinning its PDS)."""
    if _DID.match(did) is None:
        raise SourceError(f"{did!r:.100} is not a DID")
    if _CID.match(cid) is None:
        raise SourceError(f"{cid!r:.100} is not a base32 CID")
    url = f"at://{did}/blob/{cid}"
    if pds is not None:
        url += "?pds=" + quote(_check_pds(pds, url), safe="")
    return url


def parse_blob_url(url: str) -> tuple[str, str, str | None]:
    """``(did, cid, pds or None)`` of a blob URL; SourceError for anything else."""
    m = _URL.match(url)
    if m is None:
        if url.startswith("at://"):
            raise SourceError(
                f"{url!r:.300} is not a blob URL (at://<did>/blob/<cid>); record URIs such as "
                "at://<did>/science.alt.dataset.entry/<rkey> are loaded with load_dataset()"
            )
        raise SourceError(f"{url!r:.300} is not an at:// blob URL")
    did, cid, query = m.group(1), m.group(2), m.group(3)
    if _DID.match(did) is None:
        raise SourceError(f"blob URL {url!r:.300} does not name a DID")
    if _CID.match(cid) is None:
        raise SourceError(f"blob URL {url!r:.300} does not name a base32 CID")
    pds = None
    if query:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=False)
        unknown = set(params) - {"pds"}
        if unknown or len(params.get("pds", [])) > 1:
            raise SourceError(f"blob URL {url!r:.300}: only one ?pds= parameter is understood")
        if "pds" in params:
            pds = _check_pds(params["pds"][0], url)
    return did, cid, pds


def plain_http_base(url: str) -> SplitResult | None:
    """The parts of ``url`` when it is a plain http(s) base URL (a host; no credentials, query,
    fragment, whitespace or control characters), else None."""
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
        or re.search(r"[\s\x00-\x1f\x7f]", url)
    ):
        return None
    return parts


def _check_pds(pds: str, url: str) -> str:
    if plain_http_base(pds) is None:
        raise SourceError(f"blob URL {url!r:.300}: pds must be a plain http(s) base URL")
    return pds.rstrip("/")


# --------------------------------------------------------------------------------- locating
@contextlib.contextmanager
def use_pds_locator(locator: PdsLocator) -> Iterator[None]:
    """Within the block, blob URLs without ``?pds=`` find their PDS with ``locator``."""
    token = _CURRENT_LOCATOR.set(locator)
    try:
        yield
    finally:
        _CURRENT_LOCATOR.reset(token)


# ----------------------------------------------------------------------------------- source
class AtBlobSource:
    """A shard held as a PDS blob; bytes are verified against the CID before any is used."""

    def __init__(
        self,
        url: str,
        *,
        pds_locator: PdsLocator | None = None,
        max_bytes: int = DEFAULT_MAX_BLOB_BYTES,
        timeout: float | None = None,
        total_timeout: float | None = None,
    ) -> None:
        self.url = url
        self.did, self.cid, self._pds = parse_blob_url(url)
        self._locator = pds_locator or _CURRENT_LOCATOR.get()
        self.max_bytes = max_bytes
        self.deadlines = Deadlines.resolve(timeout, total_timeout)
        self.timeout = self.deadlines.idle
        self._kept: Spool | None = None
        self._hand_off = False  # the kept download was made for a scan: the next open() takes it
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_kept"], state["_hand_off"] = None, False
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def content_sha256(self) -> str:
        """The sha256 the blob's CID commits to (hex)."""
        return _cid_digest(self.cid, self.url).hex()

    def _pds_url(self) -> str:
        if self._pds is not None:
            return self._pds
        if self._locator is None:
            raise SourceError(
                f"cannot find the PDS holding {self.url}: add ?pds=<url> to the URL, or resolve "
                "it inside `with atdata.atmosphere.Resolver(...).activate():`"
            )
        try:
            return _check_pds(self._locator(self.did), self.url)
        except SourceError:
            raise
        except Exception as exc:  # the locator's own error (AtmosphereError, ...) explains why
            raise SourceError(f"cannot find the PDS holding {self.url}: {exc}") from exc

    def fetch(self) -> bytes:
        """The verified bytes of the blob, in memory (a new download unless one is kept)."""
        with self._reader() as stream:
            return stream.read()

    def download(self, *, in_memory: int = 0) -> Spool:
        """The blob, verified against its CID, in a new spool (the caller closes it)."""
        pds = self._pds_url()
        want = _cid_digest(self.cid, self.url)
        url = f"{pds}/xrpc/com.atproto.sync.getBlob?" + urlencode(
            {"did": self.did, "cid": self.cid}
        )
        writer = SpoolWriter(self.url, max_bytes=self.max_bytes, in_memory=in_memory)
        try:
            _http_get(url, self.max_bytes, self.deadlines, where=self.url, on_chunk=writer.write)
        except BaseException:
            writer.abort()
            raise
        spool = writer.finish()
        if spool.sha256 != want.hex():
            spool.close()
            raise IntegrityError(
                f"blob bytes from {pds} do not match CID {self.cid} (sha256 {spool.sha256}, "
                f"expected {want.hex()}); the data was corrupted or tampered with",
                shard=self.url,
            )
        return spool

    def _keep(self) -> Spool:
        with self._lock:
            kept = self._kept
            if kept is None or kept.closed:
                kept = self._kept = self.download()
        kept_spools.used(self)
        return kept

    def release_kept(self) -> None:
        """Let the kept spool go (closed once no reader uses it)."""
        with self._lock:
            self._kept, self._hand_off = None, False

    def _reader(self) -> BinaryIO:
        with self._lock:
            kept = self._kept
            if kept is not None and not kept.closed:
                if self._hand_off:  # made for a scan, not for random access: free it after use
                    self._kept, self._hand_off = None, False
                    return kept.reader(owns=True)
                return kept.reader()
        return self.download(in_memory=STREAM_IN_MEMORY_BYTES).reader(owns=True)

    # -- ShardSource ----------------------------------------------------------------------
    def local_path(self) -> str | None:
        return None

    def open(self) -> BinaryIO:
        return self._reader()

    def read_range(self, start: int, length: int) -> bytes:
        spool = self._keep()
        self._hand_off = False
        return spool.read_range(start, length)

    def read_sidecar(self, suffix: str) -> bytes | None:
        """Blob records carry no sidecars; the offset index is built from the verified bytes
        (so readers do not warn about a missing index). The download made for it is handed to
        the next ``open()`` rather than fetched twice."""
        with self._lock:
            fresh = self._kept is None or self._kept.closed
        spool = self._keep()
        if fresh:
            self._hand_off = True
        return _scan_sidecar(_SpoolShard(self.url, spool), suffix)

    def derive_sidecar(self, source: ShardSource, suffix: str) -> bytes | None:
        """The sidecar built from ``source``, another copy of this blob (e.g. a cached one)."""
        return _scan_sidecar(source, suffix)

    def size(self) -> int:
        return self._keep().size


class _SpoolShard:
    """A verified spool read as a ShardSource (for scanning it)."""

    def __init__(self, url: str, spool: Spool) -> None:
        self.url = url
        self.spool = spool

    def local_path(self) -> str | None:
        return None

    def open(self) -> BinaryIO:
        return self.spool.reader()

    def read_range(self, start: int, length: int) -> bytes:
        return self.spool.read_range(start, length)

    def read_sidecar(self, suffix: str) -> bytes | None:
        return None


def _scan_sidecar(source: ShardSource, suffix: str) -> bytes | None:
    from ..shards.offsets import OFFSETS_SUFFIX
    from ..shards.reader import scan_offsets

    if suffix != OFFSETS_SUFFIX:
        return None
    return scan_offsets(source).to_bytes()


def _http_get(
    url: str,
    max_bytes: int,
    deadlines: Deadlines,
    *,
    where: str,
    on_chunk: Callable[[bytes], object],
) -> int:
    """GET ``url`` (following up to 3 http(s) redirects), handing each chunk to ``on_chunk``;
    at most ``max_bytes``, within ``deadlines``. Returns the number of bytes.

    Plain ``http.client`` with large reads: for bodies of tens of megabytes it is several
    times faster than httpx's streaming, and it reads no proxy settings from the environment.
    Sockets time out after ``deadlines.idle`` seconds without a byte; a timer shuts the
    connection down when ``deadlines.total`` has passed (a trickle never trips a socket
    timeout), and the read then ends in :class:`DeadlineExceeded`.
    """
    started = time.monotonic()
    for _hop in range(4):
        left = deadlines.total - (time.monotonic() - started)
        if left <= 0:
            raise _past_total(where, deadlines, started, "following redirects")
        with _Connection(url, where, deadlines, left) as conn:
            try:
                resp = conn.get()
                if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                    url = urljoin(url, resp.getheader("Location", ""))
                    continue
                if resp.status != 200:
                    detail = _error_text(resp.read(4096))
                    conn.check(started)
                    raise SourceError(f"cannot fetch {where}: HTTP {resp.status}{detail}")
                return _read_body(
                    resp, max_bytes, where, on_chunk=on_chunk, conn=conn, started=started
                )
            except (OSError, http.client.HTTPException) as exc:
                conn.check(started, exc)
                raise SourceError(f"cannot fetch {where}: {type(exc).__name__}: {exc}") from exc
    raise SourceError(f"cannot fetch {where}: too many redirects")


def _read_body(
    resp: http.client.HTTPResponse,
    max_bytes: int,
    where: str,
    *,
    on_chunk: Callable[[bytes], object],
    conn: "_Connection",
    started: float,
) -> int:
    declared = resp.getheader("Content-Length")
    size = int(declared) if declared and declared.isdigit() else None
    if size is not None and size > max_bytes:
        raise SourceError(
            f"{where} is {size} bytes, more than the {max_bytes} allowed "
            "(raise max_bytes if this is expected)"
        )
    got = 0
    while True:
        chunk = resp.read(min(_READ, max_bytes + 1 - got))
        conn.check(started)  # a body ended by the total deadline is not a whole body
        if not chunk:
            break
        got += len(chunk)
        if got > max_bytes:
            raise SourceError(
                f"{where} is larger than {max_bytes} bytes; refusing to download more "
                "(raise max_bytes if this is expected)"
            )
        on_chunk(chunk)
    if size is not None and got != size:
        raise SourceError(f"cannot fetch {where}: the body ended at {got} of {size} bytes")
    return got


class _Connection:
    """One http.client connection for a GET, shut down by a timer when the total deadline
    passes; :meth:`check` turns what that (or an idle socket timeout) did into DeadlineExceeded."""

    def __init__(self, url: str, where: str, deadlines: Deadlines, left: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceError(f"cannot fetch {where}: {url!r:.200} is not an http(s) URL")
        conn_cls = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self.where = where
        self.deadlines = deadlines
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.conn = conn_cls(parts.hostname, parts.port, timeout=min(deadlines.idle, left))
        self.expired = threading.Event()
        self._timer = threading.Timer(left, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "_Connection":
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self.conn.close()

    def _expire(self) -> None:
        self.expired.set()
        sock = self.conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def get(self) -> http.client.HTTPResponse:
        self.conn.request("GET", self.path, headers={"User-Agent": "atdata", "Accept": "*/*"})
        sock = self.conn.sock
        if sock is not None:
            sock.settimeout(self.deadlines.idle)
        if self.expired.is_set():  # shut down while connecting (the socket was not there yet)
            raise ConnectionAbortedError("the total deadline passed")
        return self.conn.getresponse()

    def check(self, started: float, exc: BaseException | None = None) -> None:
        """Raise DeadlineExceeded if a deadline ended this connection."""
        if self.expired.is_set():
            why = f"{type(exc).__name__}: {exc}" if exc is not None else "still reading"
            raise _past_total(self.where, self.deadlines, started, why) from exc
        if isinstance(exc, TimeoutError):
            raise DeadlineExceeded(
                f"reading {self.where} stalled: no byte within the idle deadline of "
                f"{self.deadlines.idle:g}s (raise it with ${IDLE_TIMEOUT_ENV} or the source's "
                "timeout setting)"
            ) from exc


def _past_total(where: str, deadlines: Deadlines, started: float, why: str) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"reading {where} passed its total deadline of {deadlines.total:g}s (waited "
        f"{time.monotonic() - started:.1f}s: {why}); raise it with ${TOTAL_TIMEOUT_ENV} or the "
        "source's total_timeout setting"
    )


def _error_text(body: bytes) -> str:
    import json

    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    if not isinstance(data, dict):
        return ""
    parts = [str(data.get(k)) for k in ("error", "message") if isinstance(data.get(k), str)]
    text = re.sub(r"[^\x20-\x7e]", "?", ": ".join(parts))[:300]
    return f" ({text})" if text else ""


register_scheme("at", AtBlobSource)
