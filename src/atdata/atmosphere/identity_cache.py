"""A small on-disk cache of where accounts live: the parts of DID documents that resolution uses.

Loading ``@handle/name`` needs the DID document of the handle's DID twice over: to check that
the document claims the handle back (``alsoKnownAs``) and to find the account's PDS. A new
process (or a new :class:`~atdata.atmosphere.resolve.Resolver`) would fetch it again each time;
this cache keeps those two parts for a short time (the resolver's ``cache_ttl``, 5 minutes by
default) under ``$ATDATA_HOME/cache/identity``, one small JSON file per (directory, DID).

What it may and may not do:

- Only the document's ``id``, its ``at://`` ``alsoKnownAs`` names and its
  ``AtprotoPersonalDataServer`` services are kept: never keys (signature checks always fetch
  the document).
- An entry is keyed by the service it came from (the PLC directory URL, or ``did:web``) and the
  DID; it names both inside, and is used only when both match, the document's ``id`` is the
  DID, and it was written less than ``ttl`` seconds ago (and not in the future). Anything else
  (a file that is not JSON, too large, of another shape, for another DID or directory, expired)
  is ignored and removed, and the document is fetched again.
- A cached document is a hint, not proof: when it does not claim the handle being resolved, the
  resolver fetches the document again before refusing.
- At most ``max_entries`` files are kept (the oldest go first); every failure to read or write
  the cache is ignored (resolution then fetches, as without a cache).
"""

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._home import atdata_home

__all__ = ["IdentityCache", "identity_parts"]

_VERSION = 1
_MAX_FILE_BYTES = 64 * 1024
_MAX_NAMES = 16
_MAX_TEXT = 2048
_CLOCK_SKEW = 5.0  # seconds an entry's time may lie ahead of ours (another process wrote it)
_PDS_TYPE = "AtprotoPersonalDataServer"


def identity_parts(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """The parts of a DID document the cache keeps, or None when they are not plain values."""
    did = doc.get("id")
    aka, svc = doc.get("alsoKnownAs"), doc.get("service")
    names = [a for a in _listed(aka) if isinstance(a, str) and a.startswith("at://")]
    services = [
        {"id": s.get("id"), "type": s.get("type"), "serviceEndpoint": s.get("serviceEndpoint")}
        for s in _listed(svc)
        if isinstance(s, Mapping) and s.get("type") == _PDS_TYPE
    ]
    parts = {"id": did, "alsoKnownAs": names, "service": services}
    return parts if _well_formed(parts) else None


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _well_formed(parts: Any) -> bool:
    if not isinstance(parts, dict) or set(parts) != {"id", "alsoKnownAs", "service"}:
        return False
    names, services = parts["alsoKnownAs"], parts["service"]
    return (
        _text(parts["id"])
        and isinstance(names, list)
        and len(names) <= _MAX_NAMES
        and all(_text(n) for n in names)
        and isinstance(services, list)
        and len(services) <= _MAX_NAMES
        and all(
            isinstance(s, dict)
            and set(s) == {"id", "type", "serviceEndpoint"}
            and all(_text(v) for v in s.values())
            for s in services
        )
    )


def _text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_TEXT


class IdentityCache:
    """DID -> the identity parts of its document, on disk for ``ttl`` seconds (module docs)."""

    def __init__(self, directory: Path | str, *, ttl: float, max_entries: int = 256) -> None:
        self.directory = Path(directory)
        self.ttl = ttl
        self.max_entries = max_entries

    @classmethod
    def default(cls, *, ttl: float) -> "IdentityCache":
        """The cache under ``$ATDATA_HOME/cache/identity``."""
        return cls(atdata_home() / "cache" / "identity", ttl=ttl)

    def _path(self, service: str, did: str) -> Path:
        key = hashlib.sha256(f"{service}\n{did}".encode()).hexdigest()[:40]
        return self.directory / f"{key}.json"

    def get(self, service: str, did: str) -> dict[str, Any] | None:
        """The cached parts of ``did``'s document as ``service`` served it, if fresh and sound."""
        path = self._path(service, did)
        try:
            with open(path, "rb") as f:
                raw = f.read(_MAX_FILE_BYTES + 1)
        except OSError:
            return None
        parts = self._check(raw, service, did)
        if parts is None:
            with contextlib.suppress(OSError):
                path.unlink()
        return parts

    def _check(self, raw: bytes, service: str, did: str) -> dict[str, Any] | None:
        if len(raw) > _MAX_FILE_BYTES:
            return None
        try:
            entry = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        if not isinstance(entry, dict) or entry.get("version") != _VERSION:
            return None
        written = entry.get("written")
        if not isinstance(written, int | float) or isinstance(written, bool):
            return None
        age = time.time() - written
        if not -_CLOCK_SKEW <= age < self.ttl:
            return None
        parts = entry.get("document")
        if entry.get("service") != service or entry.get("did") != did or not _well_formed(parts):
            return None
        if not isinstance(parts, dict) or parts["id"] != did:
            return None
        return parts

    def put(self, service: str, did: str, doc: Mapping[str, Any]) -> None:
        """Keep the identity parts of ``doc`` (a document ``service`` served for ``did``)."""
        parts = identity_parts(doc)
        if parts is None or parts["id"] != did or self.ttl <= 0:
            return
        entry = {
            "version": _VERSION,
            "service": service,
            "did": did,
            "written": time.time(),
            "document": parts,
        }
        data = json.dumps(entry).encode()
        if len(data) > _MAX_FILE_BYTES:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self._path(service, did))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._prune()
        except OSError:
            return

    def forget(self, service: str, did: str) -> None:
        with contextlib.suppress(OSError):
            self._path(service, did).unlink()

    def _prune(self) -> None:
        """Remove the oldest entries past ``max_entries``."""
        entries = []
        for path in self.directory.glob("*.json"):
            with contextlib.suppress(OSError):
                entries.append((path.stat().st_mtime, path))
        if len(entries) <= self.max_entries:
            return
        entries.sort()
        for _, path in entries[: len(entries) - self.max_entries]:
            with contextlib.suppress(OSError):
                path.unlink()
