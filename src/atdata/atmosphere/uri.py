"""``at://`` URIs (the identifier checks they use live in :mod:`atdata.net.ids`).

Everything here is pure string checking (no network). The checks are the AT Protocol's
published syntax rules, slightly stricter where that costs nothing (no query or fragment on
``at://`` URIs, no control characters anywhere).
"""

import re
from dataclasses import dataclass

from ..errors import AtmosphereError
from ..net.ids import is_cid, is_did, is_handle, is_nsid, is_record_key

__all__ = [
    "AtUri",
    "is_cid",
    "is_did",
    "is_handle",
    "is_nsid",
    "is_record_key",
    "normalize_handle",
]

_AT_URI = re.compile(r"^at://([^/?#\s]+)(?:/([^/?#\s]+)(?:/([^/?#\s]+))?)?/?\Z")


def normalize_handle(value: str) -> str:
    """A handle lower-cased, without a leading ``@``; AtmosphereError when it is not a handle."""
    handle = value[1:] if value.startswith("@") else value
    if not is_handle(handle):
        raise AtmosphereError(f"{value!r} is not a valid handle (like alice.example.com)")
    return handle.lower()


@dataclass(frozen=True)
class AtUri:
    """``at://<did-or-handle>[/<collection>[/<rkey>]]``: the address of an account, collection or record.

    >>> u = AtUri.parse("at://did:plc:abc123/science.alt.dataset.entry/3kabc")
    >>> (u.authority, u.collection, u.rkey)
    ('did:plc:abc123', 'science.alt.dataset.entry', '3kabc')
    >>> str(u)
    'at://did:plc:abc123/science.alt.dataset.entry/3kabc'
    """

    authority: str
    collection: str | None = None
    rkey: str | None = None

    def __post_init__(self) -> None:
        if not (is_did(self.authority) or is_handle(self.authority)):
            raise AtmosphereError(f"at:// URI authority {self.authority!r} is not a DID or handle")
        if self.collection is not None and not is_nsid(self.collection):
            raise AtmosphereError(f"at:// URI collection {self.collection!r} is not an NSID")
        if self.rkey is not None:
            if self.collection is None:
                raise AtmosphereError("an at:// URI with a record key needs a collection")
            if not is_record_key(self.rkey):
                raise AtmosphereError(f"at:// URI record key {self.rkey!r} is not valid")

    @classmethod
    def parse(cls, value: str) -> "AtUri":
        """Parse ``value``; AtmosphereError naming it when it is not a well-formed at:// URI."""
        if not isinstance(value, str) or len(value) > 8192:
            raise AtmosphereError(f"not an at:// URI: {value!r:.200}")
        m = _AT_URI.match(value)
        if m is None:
            raise AtmosphereError(
                f"not an at:// URI: {value!r:.200} (expected at://<did>/<collection>/<rkey>)"
            )
        try:
            return cls(m.group(1), m.group(2), m.group(3))
        except AtmosphereError as exc:
            raise AtmosphereError(f"malformed at:// URI {value!r:.200}: {exc}") from None

    @classmethod
    def for_record(cls, did: str, collection: str, rkey: str) -> "AtUri":
        return cls(did, collection, rkey)

    @property
    def is_record(self) -> bool:
        return self.rkey is not None

    @property
    def did(self) -> str:
        """The authority, which must be a DID (records we dereference are always addressed so)."""
        if not is_did(self.authority):
            raise AtmosphereError(f"{self} names a handle, not a DID; resolve the handle first")
        return self.authority

    def __str__(self) -> str:
        out = f"at://{self.authority}"
        if self.collection is not None:
            out += f"/{self.collection}"
            if self.rkey is not None:
                out += f"/{self.rkey}"
        return out
