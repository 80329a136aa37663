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
byte is handed on. Bytes are fetched through the transport (:mod:`atdata.net`) with
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
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO, cast
from urllib.parse import parse_qs, quote

from ..errors import IntegrityError, ShardError, SourceError
from ..net.deadlines import Deadlines
from ..net.fetch import fetch_body
from ..net.ids import (
    blob_cid,
    cid_digest,
    cid_of_sha256,
    is_cid_text,
    is_did,
    plain_http_base,
    verify_blob,
)
from .base import ShardSource, register_scheme, sidecar_builder
from .chunked import ChunkDigests, ChunkVerifiedStream
from .spool import STREAM_IN_MEMORY_BYTES, KeepsSpool, Spool, SpoolWriter

__all__ = [
    "AtBlobSource",
    "DEFAULT_MAX_BLOB_BYTES",
    "PdsLocator",
    "blob_cid",
    "blob_sidecars",
    "blob_url",
    "cid_of_sha256",
    "parse_blob_url",
    "plain_http_base",
    "use_pds_locator",
    "verify_blob",
]

#: Largest blob an AtBlobSource downloads unless told otherwise.
DEFAULT_MAX_BLOB_BYTES = 1 << 30

PdsLocator = Callable[[str], str]
"""Maps a DID to the base URL of the PDS hosting its repository."""

_CURRENT_LOCATOR: contextvars.ContextVar[PdsLocator | None] = contextvars.ContextVar(
    "atdata_pds_locator", default=None
)
#: sidecar suffix -> the blob URL parameter naming the blob that holds it
_SIDECAR_PARAMS = {".manifest": "manifest", ".idx": "idx"}
#: largest sidecar blob fetched (manifests and offset indexes are far smaller)
MAX_SIDECAR_BLOB_BYTES = 64 << 20
_URL = re.compile(r"^at://([^/?#]+)/blob/([^/?#]+)(?:\?([^#]*))?\Z")


# ------------------------------------------------------------------------------------ URLs
def blob_url(
    did: str, cid: str, pds: str | None = None, sidecars: Mapping[str, str] | None = None
) -> str:
    """The source URL of blob ``cid`` in ``did``'s repository (optionally pinning its PDS).

    ``sidecars`` maps sidecar suffixes (``".manifest"``, ``".idx"``) to the CIDs of blobs in the
    same repository holding them; they travel in the URL (``&manifest=<cid>``, ``&idx=<cid>``)
    so that :meth:`AtBlobSource.read_sidecar` fetches them instead of the shard.
    """
    if not is_did(did):
        raise SourceError(f"{did!r:.100} is not a DID")
    if not is_cid_text(cid):
        raise SourceError(f"{cid!r:.100} is not a base32 CID")
    url = f"at://{did}/blob/{cid}"
    params: list[str] = []
    if pds is not None:
        params.append("pds=" + quote(_check_pds(pds, url), safe=""))
    for suffix, side in sorted((sidecars or {}).items()):
        name = _SIDECAR_PARAMS.get(suffix)
        if name is None:
            raise SourceError(f"{suffix!r:.40} is not a sidecar a blob URL can name")
        if not is_cid_text(side):
            raise SourceError(f"{side!r:.100} is not a base32 CID")
        params.append(f"{name}={side}")
    return url + ("?" + "&".join(params) if params else "")


def parse_blob_url(url: str) -> tuple[str, str, str | None]:
    """``(did, cid, pds or None)`` of a blob URL; SourceError for anything else."""
    did, cid, pds, _ = _parse(url)
    return did, cid, pds


def blob_sidecars(url: str) -> dict[str, str]:
    """The sidecar blobs a blob URL names: suffix -> CID (see :func:`blob_url`)."""
    return _parse(url)[3]


def _parse(url: str) -> tuple[str, str, str | None, dict[str, str]]:
    m = _URL.match(url)
    if m is None:
        if url.startswith("at://"):
            raise SourceError(
                f"{url!r:.300} is not a blob URL (at://<did>/blob/<cid>); record URIs such as "
                "at://<did>/science.alt.dataset.entry/<rkey> are loaded with load_dataset()"
            )
        raise SourceError(f"{url!r:.300} is not an at:// blob URL")
    did, cid, query = m.group(1), m.group(2), m.group(3)
    if not is_did(did):
        raise SourceError(f"blob URL {url!r:.300} does not name a DID")
    if not is_cid_text(cid):
        raise SourceError(f"blob URL {url!r:.300} does not name a base32 CID")
    pds = None
    sidecars: dict[str, str] = {}
    if query:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=False)
        unknown = set(params) - {"pds", *_SIDECAR_PARAMS.values()}
        if unknown or any(len(v) > 1 for v in params.values()):
            raise SourceError(
                f"blob URL {url!r:.300}: only one each of ?pds=, &manifest= and &idx= "
                "parameters is understood"
            )
        if "pds" in params:
            pds = _check_pds(params["pds"][0], url)
        for suffix, name in _SIDECAR_PARAMS.items():
            if name in params:
                side = params[name][0]
                if not is_cid_text(side):
                    raise SourceError(f"blob URL {url!r:.300}: {name}= is not a base32 CID")
                sidecars[suffix] = side
    return did, cid, pds, sidecars


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
class AtBlobSource(KeepsSpool):
    """A shard held as a PDS blob; bytes are verified against the CID before any is used."""

    def __init__(
        self,
        url: str,
        *,
        pds_locator: PdsLocator | None = None,
        max_bytes: int = DEFAULT_MAX_BLOB_BYTES,
        timeout: float | None = None,
        total_timeout: float | None = None,
        chunks: ChunkDigests | None = None,
    ) -> None:
        self.url = url
        self.did, self.cid, self._pds, self._sidecars = _parse(url)
        #: the sha256 of each chunk, as the record says: a stream hands out verified chunks
        #: as they arrive instead of waiting for the whole blob (see :mod:`.chunked`)
        self.chunks = chunks
        self._locator = pds_locator or _CURRENT_LOCATOR.get()
        self.max_bytes = max_bytes
        self.deadlines = Deadlines.resolve(timeout, total_timeout)
        self.timeout = self.deadlines.idle
        self._kept: Spool | None = None
        self._hand_off = False  # the kept download was made for a scan: the next open() takes it
        self._started: ChunkVerifiedStream | None = None  # see start_stream()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_kept"], state["_hand_off"], state["_started"] = None, False, None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def content_sha256(self) -> str:
        """The sha256 the blob's CID commits to (hex)."""
        return cid_digest(self.cid, self.url).hex()

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

    def _fetch(self, pds: str, on_chunk: Callable[[bytes], object]) -> int:
        return fetch_body(
            f"{pds}/xrpc/com.atproto.sync.getBlob",
            params={"did": self.did, "cid": self.cid},
            max_bytes=self.max_bytes,
            deadlines=self.deadlines,
            where=self.url,
            on_chunk=on_chunk,
        )

    def stream(self) -> BinaryIO:
        """A new download of the blob, handed out chunk by chunk as each is verified against
        :attr:`chunks` (the whole blob against the CID at its end); needs :attr:`chunks`."""
        return cast(BinaryIO, self._chunk_stream())

    def _chunk_stream(self, claim_within: float | None = None) -> ChunkVerifiedStream:
        if self.chunks is None:
            raise SourceError(f"{self.url}: no chunk digests are known to stream it verified")
        pds = self._pds_url()
        want = cid_digest(self.cid, self.url).hex()

        def fetch(on_chunk: Callable[[bytes], object]) -> int:
            return self._fetch(pds, on_chunk)

        return ChunkVerifiedStream(fetch, self.chunks, want, self.url, claim_within=claim_within)

    def start_stream(self, *, claim_within: float) -> None:
        """Start the download the next :meth:`open` hands out, now (a prefetch; needs
        :attr:`chunks`). Not opened within ``claim_within`` seconds, it stops and lets its
        chunks go, and ``open()`` downloads afresh."""
        stream = self._chunk_stream(claim_within)
        with self._lock:
            old, self._started = self._started, stream
        if old is not None:
            old.close()

    def stop_stream(self) -> None:
        """Stop a download started by :meth:`start_stream` that was not opened yet."""
        with self._lock:
            old, self._started = self._started, None
        if old is not None:
            old.close()

    def download(self, *, in_memory: int = 0) -> Spool:
        """The blob, verified against its CID, in a new spool (the caller closes it)."""
        pds = self._pds_url()
        want = cid_digest(self.cid, self.url)
        writer = SpoolWriter(self.url, max_bytes=self.max_bytes, in_memory=in_memory)
        try:
            self._fetch(pds, writer.write)
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

    def release_kept(self) -> None:
        """Let the kept spool go (closed once no reader uses it)."""
        with self._lock:
            self._kept, self._hand_off = None, False

    def _reader(self) -> BinaryIO:
        with self._lock:
            started, self._started = self._started, None
        if started is not None and started.claim():
            return cast(BinaryIO, started)
        with self._lock:
            kept = self._kept
            if kept is not None and not kept.closed:
                if self._hand_off:  # made for a scan, not for random access: free it after use
                    self._kept, self._hand_off = None, False
                    return kept.reader(owns=True)
                return kept.reader()
        if self.chunks is not None:
            return self.stream()
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
        """A sidecar the URL names a blob for (``&manifest=``, ``&idx=``) is that blob's bytes,
        verified against its CID (a failed fetch or a CID mismatch raises SourceError for a
        manifest, which readers then ignore, and falls back to scanning for an offset index);
        a sidecar no blob holds and none can be built from the shard is None (no download);
        otherwise the offset index is built from the verified
        shard bytes (so readers do not warn about a missing index), and the download made for
        it is handed to the next ``open()`` rather than fetched twice."""
        side = self._sidecars.get(suffix)
        if side is not None and suffix != ".idx":
            return self._sidecar_blob(side)  # SourceError: the caller reads without it
        if side is not None:
            try:
                return self._sidecar_blob(side)
            except SourceError:
                pass  # built from the shard below
        if sidecar_builder(suffix) is None:
            return None
        with self._lock:
            fresh = self._kept is None or self._kept.closed
        spool = self._keep()
        if fresh:
            self._hand_off = True
        return _scan_sidecar(_SpoolShard(self.url, spool), suffix)

    def _sidecar_blob(self, cid: str) -> bytes:
        """The verified bytes of the sidecar blob ``cid``; SourceError (naming why) if it cannot
        be fetched or does not hash to its CID."""
        url = blob_url(self.did, cid, self._pds)
        blob = AtBlobSource(
            url,
            pds_locator=self._locator,
            max_bytes=MAX_SIDECAR_BLOB_BYTES,
            timeout=self.deadlines.idle,
            total_timeout=self.deadlines.total,
        )
        try:
            return blob.fetch()
        except (ShardError, OSError) as exc:  # IntegrityError: the bytes are not the CID's
            raise SourceError(f"sidecar blob {url} of {self.url}: {exc}") from exc

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
    build = sidecar_builder(suffix)
    return None if build is None else build(source)


register_scheme("at", AtBlobSource)
