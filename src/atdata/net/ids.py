"""AT Protocol identifiers and content ids, checked as strings (no network).

The one home of the syntax every remote path relies on: DIDs, handles, NSIDs, record keys,
base32 CIDv1 strings, and the CIDs atdata computes or checks itself:

- a *blob* CID (what a PDS names an uploaded blob): CIDv1, raw codec (0x55), sha2-256;
- a *record* CID of a DAG-CBOR value (codec 0x71, sha2-256), used as a schema record's key.

:func:`cid_digest` returns the sha256 a blob CID commits to and refuses anything else, so a
caller can hash bytes as they stream in and compare at the end (:func:`verify_blob` does it in
one step for bytes in memory). ``libipld`` (a dependency of the ``atmosphere`` extra, and of
the core package) does the multibase/multihash arithmetic.
"""

import hashlib
import re
from typing import Any
from urllib.parse import SplitResult, urlsplit

from ..errors import IntegrityError, InvalidArgumentError

__all__ = [
    "DAG_CBOR_CODEC",
    "RAW_CODEC",
    "SHA2_256",
    "blob_cid",
    "cid_digest",
    "cid_of_sha256",
    "is_cid",
    "is_cid_text",
    "is_did",
    "is_handle",
    "is_nsid",
    "is_record_key",
    "plain_http_base",
    "record_cid",
    "verify_blob",
]

RAW_CODEC = 0x55
DAG_CBOR_CODEC = 0x71
SHA2_256 = 0x12

DID = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]\Z")
HANDLE = re.compile(
    r"^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\Z"
)
NSID = re.compile(
    r"^[a-zA-Z]([a-zA-Z0-9-]{0,62}[a-zA-Z0-9])?"
    r"(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,62}[a-zA-Z0-9])?)+"
    r"\.[a-zA-Z]([a-zA-Z0-9]{0,62})?\Z"
)
RECORD_KEY = re.compile(r"^[A-Za-z0-9._:~-]{1,512}\Z")
CID_BASE32 = re.compile(r"^b[a-z2-7]{10,200}\Z")
_UNSAFE_URL_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")


# ------------------------------------------------------------------------------- identifiers
def is_did(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 2048 and DID.match(value) is not None


def is_handle(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 253 and HANDLE.match(value) is not None


def is_nsid(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 317 and NSID.match(value) is not None


def is_record_key(value: object) -> bool:
    return (
        isinstance(value, str) and value not in (".", "..") and RECORD_KEY.match(value) is not None
    )


def is_cid_text(value: object) -> bool:
    """True when ``value`` has the shape of a base32 CIDv1 (``b`` + base32), not decoded."""
    return isinstance(value, str) and CID_BASE32.match(value) is not None


def is_cid(value: object) -> bool:
    """True for a base32 CIDv1 string (``b...``) that decodes as a CID."""
    if not isinstance(value, str) or not is_cid_text(value):
        return False
    try:
        import libipld

        libipld.decode_cid(value)
    except Exception:
        return False
    return True


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
        or _UNSAFE_URL_CHARS.search(url)
    ):
        return None
    return parts


# -------------------------------------------------------------------------------------- CIDs
def _encode(codec: int, digest: bytes) -> str:
    import libipld

    if len(digest) != 32:
        raise InvalidArgumentError("a sha256 digest is 32 bytes")
    cid: str = libipld.encode_cid(bytes([1, codec, SHA2_256, 32]) + digest)
    return cid


def cid_of_sha256(digest: bytes) -> str:
    """The raw-codec CIDv1 (a blob CID) of bytes whose sha256 digest is ``digest``."""
    return _encode(RAW_CODEC, digest)


def blob_cid(data: bytes | memoryview) -> str:
    """The CID a PDS gives these bytes as a blob: CIDv1, raw codec, sha2-256, base32."""
    return cid_of_sha256(hashlib.sha256(data).digest())


def record_cid(value: Any) -> str:
    """The CIDv1 (DAG-CBOR codec, sha2-256) of ``value`` encoded as DAG-CBOR."""
    import libipld

    return _encode(DAG_CBOR_CODEC, hashlib.sha256(libipld.encode_dag_cbor(value)).digest())


def cid_digest(cid: object, where: str) -> bytes:
    """The sha2-256 digest a blob CID commits to; IntegrityError (naming ``where``) for a
    string that is not a raw-codec sha2-256 CIDv1."""
    import libipld

    if not isinstance(cid, str) or CID_BASE32.match(cid) is None:
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
    want = cid_digest(cid, where or cid)
    got = hashlib.sha256(data).digest()
    if got != want:
        raise IntegrityError(
            f"blob bytes do not match CID {cid} (sha256 {got.hex()}, expected {want.hex()}); "
            "the server sent different or corrupted data",
            shard=where or cid,
        )
