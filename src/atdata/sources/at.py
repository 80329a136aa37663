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
byte is handed on. Bytes are fetched once per source object (stdlib ``http.client``, no proxies) with
``com.atproto.sync.getBlob?did=...&cid=...`` and kept in memory.
"""

import contextlib
import contextvars
import hashlib
import io
import re
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO
from urllib.parse import SplitResult, parse_qs, quote, urlencode, urljoin, urlsplit

from ..errors import IntegrityError, SourceError
from .base import register_scheme

__all__ = [
    "DEFAULT_MAX_BLOB_BYTES",
    "AtBlobSource",
    "PdsLocator",
    "blob_cid",
    "blob_url",
    "cid_of_sha256",
    "parse_blob_url",
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
_DID = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$")
_CID = re.compile(r"^b[a-z2-7]{10,200}$")
_URL = re.compile(r"^at://([^/?#]+)/blob/([^/?#]+)(?:\?([^#]*))?$")


# ------------------------------------------------------------------------------------ CIDs
def blob_cid(data: bytes | memoryview) -> str:
    """The CID a PDS gives these bytes as a blob: CIDv1, raw codec, sha2-256, base32."""
    return cid_of_sha256(hashlib.sha256(data).digest())


def cid_of_sha256(digest: bytes) -> str:
    """The raw-codec CIDv1 of bytes whose sha256 digest is ``digest``."""
    import libipld

    if len(digest) != 32:
        raise ValueError("a sha256 digest is 32 bytes")
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
    """A shard held as a PDS blob; bytes are fetched once, verified against the CID, kept."""

    def __init__(
        self,
        url: str,
        *,
        pds_locator: PdsLocator | None = None,
        max_bytes: int = DEFAULT_MAX_BLOB_BYTES,
        timeout: float = 120.0,
    ) -> None:
        self.url = url
        self.did, self.cid, self._pds = parse_blob_url(url)
        self._locator = pds_locator or _CURRENT_LOCATOR.get()
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._data: bytes | None = None
        self._lock = threading.Lock()

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
        """The verified bytes of the blob (downloaded on first call)."""
        with self._lock:
            if self._data is None:
                self._data = self._download()
            return self._data

    def _download(self) -> bytes:
        pds = self._pds_url()
        want = _cid_digest(self.cid, self.url)
        url = f"{pds}/xrpc/com.atproto.sync.getBlob?" + urlencode(
            {"did": self.did, "cid": self.cid}
        )
        hasher = hashlib.sha256()
        data = _http_get(url, self.max_bytes, self.timeout, where=self.url, on_chunk=hasher.update)
        got = hasher.digest()
        if got != want:
            raise IntegrityError(
                f"blob bytes from {pds} do not match CID {self.cid} (sha256 {got.hex()}, "
                f"expected {want.hex()}); the data was corrupted or tampered with",
                shard=self.url,
            )
        return bytes(data)

    # -- ShardSource ----------------------------------------------------------------------
    def local_path(self) -> str | None:
        return None

    def open(self) -> BinaryIO:
        return io.BytesIO(self.fetch())

    def read_range(self, start: int, length: int) -> bytes:
        data = self.fetch()
        if start < 0 or length < 0 or start + length > len(data):
            raise SourceError(
                f"shard {self.url} has {len(data)} bytes, wanted bytes {start}..{start + length}"
            )
        return data[start : start + length]

    def read_sidecar(self, suffix: str) -> bytes | None:
        """Blob records carry no sidecars; the offset index is built from the verified bytes,
        which are in memory anyway (so readers do not warn about a missing index)."""
        from ..shards.offsets import OFFSETS_SUFFIX
        from ..shards.reader import scan_offsets

        if suffix != OFFSETS_SUFFIX:
            return None
        return scan_offsets(self).to_bytes()

    def size(self) -> int:
        return len(self.fetch())


def _http_get(
    url: str,
    max_bytes: int,
    timeout: float,
    *,
    where: str,
    on_chunk: Callable[[bytes], object] | None = None,
) -> bytearray:
    """GET ``url`` (following up to 3 http(s) redirects) into memory, at most ``max_bytes``.

    Plain ``http.client`` with large reads: for bodies of tens of megabytes it is several
    times faster than httpx's streaming, and it reads no proxy settings from the environment.
    """
    import http.client

    for _hop in range(4):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceError(f"cannot fetch {where}: {url!r:.200} is not an http(s) URL")
        conn_cls = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        conn = conn_cls(parts.hostname, parts.port, timeout=timeout)
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn.request("GET", path, headers={"User-Agent": "atdata", "Accept": "*/*"})
            resp = conn.getresponse()
            if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                url = urljoin(url, resp.getheader("Location", ""))
                continue
            if resp.status != 200:
                detail = _error_text(resp.read(4096))
                raise SourceError(f"cannot fetch {where}: HTTP {resp.status}{detail}")
            declared = resp.getheader("Content-Length")
            size = int(declared) if declared and declared.isdigit() else None
            if size is not None and size > max_bytes:
                raise SourceError(
                    f"{where} is {size} bytes, more than the {max_bytes} allowed "
                    "(raise max_bytes if this is expected)"
                )
            buf = bytearray()
            while True:
                chunk = resp.read(min(_READ, max_bytes + 1 - len(buf)))
                if not chunk:
                    break
                buf += chunk
                if on_chunk is not None:
                    on_chunk(chunk)
                if len(buf) > max_bytes:
                    raise SourceError(
                        f"{where} is larger than {max_bytes} bytes; refusing to download more "
                        "(raise max_bytes if this is expected)"
                    )
            if size is not None and len(buf) != size:
                raise SourceError(
                    f"cannot fetch {where}: the body ended at {len(buf)} of {size} bytes"
                )
            return buf
        except (OSError, http.client.HTTPException) as exc:
            raise SourceError(f"cannot fetch {where}: {type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()
    raise SourceError(f"cannot fetch {where}: too many redirects")


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
