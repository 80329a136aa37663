"""Identity resolution: handle -> DID -> DID document -> PDS endpoint.

A :class:`Resolver` holds every network setting resolution needs. Real use::

    resolver = Resolver.public()       # plc.directory + bsky.social's resolveHandle
    resolver = Resolver.default()      # the same, unless $ATDATA_PLC_URL/$ATDATA_HANDLE_RESOLVER
                                       # name other services (what load_dataset and the CLI use)

Tests and private networks name their own services::

    resolver = Resolver(plc_url="http://localhost:2582", handle_resolver_pds="http://localhost:2583")

Handles resolve with ``com.atproto.identity.resolveHandle`` on ``handle_resolver_pds``, or, when
``well_known_handles=True``, with ``https://<handle>/.well-known/atproto-did``. A handle only
counts as resolved when the DID document it leads to claims it back (``alsoKnownAs``
``at://<handle>``), so a lying resolver cannot redirect a handle to someone else's data.
``did:plc`` documents come from the PLC directory; ``did:web`` documents from
``https://<host>/.well-known/did.json`` (``http://`` for ``localhost`` / ``127.0.0.1`` only).
Documents are cached for ``cache_ttl`` seconds; the handles and PDS they name are also kept on
disk for that long (``$ATDATA_HOME/cache/identity``, see :mod:`.identity_cache`; off with
``disk_cache=False``), so that a new process loading ``@handle/name`` skips the document fetch.
"""

import contextlib
import contextvars
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ..errors import AtmosphereError
from ..sources.at import use_pds_locator
from ._http import HttpReader, XrpcError, check_service_url, printable
from .identity_cache import IdentityCache
from .uri import is_did, normalize_handle

__all__ = [
    "HANDLE_RESOLVER_ENV",
    "PLC_URL_ENV",
    "PUBLIC_HANDLE_RESOLVER",
    "PUBLIC_PLC_URL",
    "Identity",
    "Resolver",
    "current_resolver",
    "resolution_settings",
]

#: The public PLC directory, used by :meth:`Resolver.public`.
PUBLIC_PLC_URL = "https://plc.directory"
#: A public service answering ``com.atproto.identity.resolveHandle``, used by :meth:`Resolver.public`.
PUBLIC_HANDLE_RESOLVER = "https://bsky.social"
#: Environment variable naming the PLC directory (overrides every default, in Python and the CLI).
PLC_URL_ENV = "ATDATA_PLC_URL"
#: Environment variable naming the service that resolves handles (overrides every default).
HANDLE_RESOLVER_ENV = "ATDATA_HANDLE_RESOLVER"

_MAX_DOC_BYTES = 256 * 1024
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_CURRENT: "contextvars.ContextVar[Resolver | None]" = contextvars.ContextVar(
    "atdata_resolver", default=None
)


def resolution_settings(
    plc_url: str | None = None,
    handle_resolver: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """(PLC directory URL, handle-resolving service URL) to resolve with.

    The one place that reads :data:`PLC_URL_ENV` and :data:`HANDLE_RESOLVER_ENV`: a variable
    that is set (and not empty) wins; else the given value (the CLI passes what ``login``
    remembered); else the public services.

    >>> resolution_settings(environ={})
    ('https://plc.directory', 'https://bsky.social')
    >>> resolution_settings("http://localhost:1", environ={"ATDATA_PLC_URL": "http://localhost:2"})
    ('http://localhost:2', 'https://bsky.social')
    """
    env = os.environ if environ is None else environ
    plc = env.get(PLC_URL_ENV) or plc_url or PUBLIC_PLC_URL
    handles = env.get(HANDLE_RESOLVER_ENV) or handle_resolver or PUBLIC_HANDLE_RESOLVER
    return plc, handles


def current_resolver() -> "Resolver | None":
    """The resolver made current by ``with resolver.activate():``, if any."""
    return _CURRENT.get()


@dataclass(frozen=True)
class Identity:
    """Who an account is and where its repository lives."""

    did: str
    handle: str | None
    pds: str


class Resolver:
    """Resolves handles and DIDs with explicitly configured services (see the module docs)."""

    def __init__(
        self,
        *,
        plc_url: str,
        handle_resolver_pds: str | None = None,
        well_known_handles: bool = False,
        timeout: float | None = None,
        cache_ttl: float = 300.0,
        disk_cache: bool = True,
    ) -> None:
        self.plc_url = check_service_url(plc_url, "plc_url")
        self.handle_resolver_pds = (
            check_service_url(handle_resolver_pds, "handle_resolver_pds")
            if handle_resolver_pds is not None
            else None
        )
        self.well_known_handles = well_known_handles
        self.cache_ttl = cache_ttl
        self._http = HttpReader(timeout=timeout)
        self._docs: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        #: where the identity parts of documents are kept between processes (None: nowhere)
        self.disk_cache = IdentityCache.default(ttl=cache_ttl) if disk_cache else None

    @classmethod
    def public(cls, **kwargs: Any) -> "Resolver":
        """A resolver for the public network: :data:`PUBLIC_PLC_URL`, :data:`PUBLIC_HANDLE_RESOLVER`."""
        kwargs.setdefault("plc_url", PUBLIC_PLC_URL)
        kwargs.setdefault("handle_resolver_pds", PUBLIC_HANDLE_RESOLVER)
        return cls(**kwargs)

    @classmethod
    def default(cls, **kwargs: Any) -> "Resolver":
        """The resolver ``load_dataset`` and ``Index`` use when none is given or current: the
        services :func:`resolution_settings` names (``$ATDATA_PLC_URL``,
        ``$ATDATA_HANDLE_RESOLVER``, else the public ones). ``kwargs`` go to the constructor."""
        plc, handles = resolution_settings()
        kwargs.setdefault("plc_url", plc)
        kwargs.setdefault("handle_resolver_pds", handles)
        return cls(**kwargs)

    def __repr__(self) -> str:
        return (
            f"Resolver(plc_url={self.plc_url!r}, handle_resolver_pds={self.handle_resolver_pds!r}, "
            f"well_known_handles={self.well_known_handles})"
        )

    def close(self) -> None:
        self._http.close()

    @property
    def http(self) -> HttpReader:
        """The reader this resolver fetches with (shared with clients built on it)."""
        return self._http

    # -- handles ---------------------------------------------------------------------------
    def resolve_handle(self, handle: str) -> str:
        """The DID of ``handle`` (``@`` prefix allowed), verified against its DID document."""
        handle = normalize_handle(handle)
        did = self._handle_to_did(handle)
        doc = self._identity(did)
        if handle not in _claimed(doc) and doc is not self._memory(did):
            doc = self.did_document(did)  # a kept document is only a hint: ask again
        if handle not in _claimed(doc):
            raise AtmosphereError(
                f"handle {handle} resolved to {did}, but that DID's document does not claim the "
                "handle (alsoKnownAs); refusing to trust the mapping"
            )
        return did

    def _handle_to_did(self, handle: str) -> str:
        errors: list[str] = []
        if self.handle_resolver_pds is not None:
            try:
                data = self._http.xrpc(
                    self.handle_resolver_pds,
                    "com.atproto.identity.resolveHandle",
                    {"handle": handle},
                    max_bytes=16384,
                    what=f"resolving handle {handle} on {self.handle_resolver_pds}",
                )
            except XrpcError as exc:
                if exc.status != 400:
                    raise
                errors.append(str(exc))
            else:
                did = data.get("did")
                if not is_did(did):
                    raise AtmosphereError(
                        f"{self.handle_resolver_pds} answered a malformed DID for handle {handle}"
                    )
                return str(did)
        if self.well_known_handles:
            try:
                body = self._http.get(
                    f"https://{handle}/.well-known/atproto-did",
                    max_bytes=2048,
                    what=f"resolving handle {handle} via https://{handle}/.well-known/atproto-did",
                )
            except AtmosphereError as exc:
                errors.append(str(exc))
            else:
                did = body.decode("ascii", "replace").strip()
                if not is_did(did):
                    raise AtmosphereError(f"https://{handle}/.well-known/atproto-did is not a DID")
                return did
        if not errors:
            raise AtmosphereError(
                f"cannot resolve handle {handle}: this Resolver has no handle_resolver_pds and "
                "well_known_handles is off"
            )
        raise AtmosphereError(f"cannot resolve handle {handle}: " + "; ".join(errors))

    # -- DIDs --------------------------------------------------------------------------------
    def did_document(self, did: str) -> dict[str, Any]:
        """The DID document of ``did`` (cached in memory), checked to be for that DID."""
        if not is_did(did):
            raise AtmosphereError(f"{did!r:.200} is not a DID")
        cached = self._memory(did)
        if cached is not None:
            return cached
        now = time.monotonic()
        doc = self._fetch_document(did)
        with self._lock:
            self._docs[did] = (now + self.cache_ttl, doc)
        if self.disk_cache is not None:
            self.disk_cache.put(self._service_of(did), did, doc)
        return doc

    def _memory(self, did: str) -> dict[str, Any] | None:
        with self._lock:
            cached = self._docs.get(did)
        return cached[1] if cached is not None and cached[0] > time.monotonic() else None

    def _identity(self, did: str) -> dict[str, Any]:
        """The handles and PDS of ``did``'s document: in memory, else kept on disk (see
        :mod:`.identity_cache`; never keys), else the document fetched."""
        if not is_did(did):
            raise AtmosphereError(f"{did!r:.200} is not a DID")
        cached = self._memory(did)
        if cached is not None:
            return cached
        if self.disk_cache is not None and self.cache_ttl > 0:
            kept = self.disk_cache.get(self._service_of(did), did)
            if kept is not None:
                return kept
        return self.did_document(did)

    def _service_of(self, did: str) -> str:
        """Where ``did``'s document comes from (the disk cache's key beside the DID)."""
        return self.plc_url if did.startswith("did:plc:") else "did:web"

    def _fetch_document(self, did: str) -> dict[str, Any]:
        if did.startswith("did:plc:"):
            url = f"{self.plc_url}/{did}"
        elif did.startswith("did:web:"):
            url = _did_web_url(did)
        else:
            raise AtmosphereError(f"cannot resolve {did}: only did:plc and did:web are supported")
        try:
            doc = self._http.get_json(
                url, max_bytes=_MAX_DOC_BYTES, what=f"fetching the DID document of {did}"
            )
        except XrpcError as exc:
            if exc.status == 404:
                raise AtmosphereError(f"{did} is not known to {url.rsplit('/', 1)[0]}") from None
            raise
        if not isinstance(doc, dict) or doc.get("id") != did:
            raise AtmosphereError(f"the DID document served for {did} is for a different DID")
        return doc

    def pds_endpoint(self, did: str) -> str:
        """The base URL of the PDS hosting ``did``'s repository (from its DID document)."""
        doc = self._identity(did)
        services = doc.get("service")
        if isinstance(services, list):
            for svc in services:
                if not isinstance(svc, Mapping):
                    continue
                sid = svc.get("id")
                if sid in ("#atproto_pds", f"{did}#atproto_pds") and (
                    svc.get("type") == "AtprotoPersonalDataServer"
                ):
                    return check_service_url(
                        svc.get("serviceEndpoint"), f"the PDS endpoint in {did}'s DID document"
                    )
        raise AtmosphereError(f"the DID document of {did} names no ATProto PDS (#atproto_pds)")

    def resolve(self, identifier: str) -> Identity:
        """DID, handle and PDS of a handle or DID. Given a handle, it is verified both ways;
        given a DID, ``handle`` is the one its document claims (not checked against DNS)."""
        if is_did(identifier):
            did = identifier
            doc = self._identity(did)
            handle = next(
                (
                    aka[len("at://") :]
                    for aka in doc.get("alsoKnownAs", [])
                    if isinstance(aka, str) and aka.startswith("at://")
                ),
                None,
            )
        else:
            handle = normalize_handle(identifier)
            did = self.resolve_handle(handle)
        return Identity(did=did, handle=handle, pds=self.pds_endpoint(did))

    def forget(self, did: str | None = None) -> None:
        """Drop cached DID documents (one, or all; on disk, the one)."""
        with self._lock:
            if did is None:
                self._docs.clear()
            else:
                self._docs.pop(did, None)
        if did is not None and self.disk_cache is not None and is_did(did):
            self.disk_cache.forget(self._service_of(did), did)

    # -- making it current --------------------------------------------------------------------
    @contextlib.contextmanager
    def activate(self) -> Iterator["Resolver"]:
        """Make this the current resolver within the block: ``load_dataset`` of atmosphere
        references uses it, and ``at://<did>/blob/<cid>`` URLs find their PDS through it."""
        token = _CURRENT.set(self)
        try:
            with use_pds_locator(self.pds_endpoint):
                yield self
        finally:
            _CURRENT.reset(token)


def _claimed(doc: Mapping[str, Any]) -> set[str]:
    """The handles a DID document claims (``alsoKnownAs`` ``at://<handle>``), lowercased."""
    aka = doc.get("alsoKnownAs")
    return {
        a[len("at://") :].lower()
        for a in (aka if isinstance(aka, list) else ())
        if isinstance(a, str) and a.startswith("at://")
    }


def _did_web_url(did: str) -> str:
    rest = did[len("did:web:") :]
    if ":" in rest:
        raise AtmosphereError(f"{did}: did:web with a path is not used by ATProto")
    host = unquote(rest)
    if not host or any(c in host for c in "/?#@\\ ") or printable(host) != host:
        raise AtmosphereError(f"{did!r:.200} does not name a host")
    hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    scheme = "http" if hostname in _LOCAL_HOSTS else "https"
    return f"{scheme}://{host}/.well-known/did.json"
