"""Checking a repository commit: its signature, by the account's ATProto signing key, and that a
record is in the commit's Merkle search tree (MST).

* The signing key is the ``#atproto`` verification method of the account's DID document
  (``did:plc`` from the PLC directories the indexer is given, ``did:web`` from the host), a
  multibase ``publicKeyMultibase`` of a compressed secp256k1 (multicodec 0xe7) or P-256 (0x1200)
  point.
* The signature is ECDSA over SHA-256 of the DAG-CBOR commit object without ``sig``, as 64
  bytes ``r || s`` in low-S form.
* An MST node is ``{l: cid|null, e: [{p, k, v, t}]}``: ``k`` is the key's suffix after ``p``
  bytes shared with the previous entry, ``v`` the record CID, ``t`` the subtree of keys between
  this entry and the next (``l``: keys before the first entry).
"""

import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..atmosphere import Resolver
from ..errors import AtmosphereError
from .car import Car, CarError, decode_block

__all__ = [
    "KeyResolver",
    "SignatureError",
    "mst_get",
    "mst_items",
    "public_key",
    "verify_commit",
]

_K256 = b"\xe7\x01"
_P256 = b"\x80\x24"
MAX_MST_DEPTH = 64


class SignatureError(ValueError):
    """A commit whose signature does not verify, or an account whose key cannot be found."""


def public_key(multibase: str, kind: str = "Multikey") -> Any:
    """The ``cryptography`` public key of a ``publicKeyMultibase`` value; ``kind``: the
    verification method's type (the legacy ``EcdsaSecp256k1VerificationKey2019`` and
    ``EcdsaSecp256r1VerificationKey2019`` carry the bare point, no multicodec prefix)."""
    import libipld
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        _base, raw = libipld.decode_multibase(multibase)
    except Exception:
        raise SignatureError("publicKeyMultibase is not multibase") from None
    raw = bytes(raw)
    curve: ec.EllipticCurve
    if kind == "EcdsaSecp256k1VerificationKey2019":
        raw = _K256 + raw
    elif kind == "EcdsaSecp256r1VerificationKey2019":
        raw = _P256 + raw
    if raw.startswith(_K256):
        curve = ec.SECP256K1()
    elif raw.startswith(_P256):
        curve = ec.SECP256R1()
    else:
        raise SignatureError("signing key is neither secp256k1 nor P-256")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, raw[2:])
    except ValueError:
        raise SignatureError("signing key is not a valid curve point") from None


def signing_key_of(doc: dict[str, Any]) -> tuple[str, str]:
    """The ``publicKeyMultibase`` and type of a DID document's ``#atproto`` verification
    method."""
    did = doc.get("id")
    for method in doc.get("verificationMethod") or []:
        if not isinstance(method, dict):
            continue
        if method.get("id") in ("#atproto", f"{did}#atproto"):
            key = method.get("publicKeyMultibase")
            if isinstance(key, str) and len(key) < 200:
                return key, str(method.get("type"))
    raise SignatureError(f"the DID document of {did!r:.100} has no #atproto signing key")


class KeyResolver:
    """Signing keys of accounts, from their DID documents (cached; :meth:`forget` on a
    ``#identity`` event). ``plc_urls``: the PLC directories to ask, in order."""

    def __init__(self, plc_urls: list[str]) -> None:
        if not plc_urls:
            raise ValueError("at least one PLC directory URL is needed")
        self._resolvers = [Resolver(plc_url=u, disk_cache=False) for u in plc_urls]
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()

    def key(self, did: str) -> Any:
        with self._lock:
            cached = self._keys.get(did)
        if cached is not None:
            return cached
        errors = []
        for resolver in self._resolvers:
            try:
                doc = resolver.did_document(did)
            except AtmosphereError as exc:
                errors.append(str(exc))
                continue
            key = public_key(*signing_key_of(doc))
            with self._lock:
                self._keys[did] = key
            return key
        raise SignatureError(f"cannot find the signing key of {did!r:.100}: " + "; ".join(errors))

    def pds_endpoint(self, did: str) -> str:
        """The PDS that hosts ``did``'s repository, from its DID document."""
        errors = []
        for resolver in self._resolvers:
            try:
                return resolver.pds_endpoint(did)
            except AtmosphereError as exc:
                errors.append(str(exc))
        raise AtmosphereError(f"cannot find the PDS of {did!r:.100}: " + "; ".join(errors))

    @property
    def http(self) -> Any:
        """The HTTP reader (the project's transport) the resolvers fetch with."""
        return self._resolvers[0].http

    def forget(self, did: str) -> None:
        with self._lock:
            self._keys.pop(did, None)
        for resolver in self._resolvers:
            resolver.forget(did)

    def close(self) -> None:
        for resolver in self._resolvers:
            resolver.close()


def verify_commit(commit: Any, key: Any) -> None:
    """Raise SignatureError unless ``commit`` (a decoded commit object) is signed by ``key``."""
    import libipld
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    if not isinstance(commit, dict):
        raise SignatureError("commit is not a map")
    sig = commit.get("sig")
    if not isinstance(sig, bytes) or len(sig) != 64:
        raise SignatureError("commit signature is not 64 bytes")
    unsigned = {k: v for k, v in commit.items() if k != "sig"}
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    order = _order(key.curve)
    if not 0 < r < order or not 0 < s <= order // 2:
        raise SignatureError("commit signature is not in low-S form")
    try:
        key.verify(
            encode_dss_signature(r, s), libipld.encode_dag_cbor(unsigned), ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature:
        raise SignatureError("commit signature does not verify") from None


def _order(curve: Any) -> int:
    if curve.name == "secp256k1":
        return 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    return 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _entries(node: Any) -> Iterator[tuple[bytes, bytes, bytes | None]]:
    """(full key, value CID, right subtree CID) of each entry of an MST node."""
    if not isinstance(node, dict) or not isinstance(node.get("e"), list):
        raise CarError("MST node is not {l, e}")
    key = b""
    for entry in node["e"]:
        if not isinstance(entry, dict):
            raise CarError("MST entry is not a map")
        p, k, v, t = entry.get("p"), entry.get("k"), entry.get("v"), entry.get("t")
        if not isinstance(p, int) or not isinstance(k, bytes) or not isinstance(v, bytes):
            raise CarError("MST entry has wrong field types")
        if p > len(key):
            raise CarError("MST entry prefix longer than the previous key")
        key = key[:p] + k
        yield key, v, t if isinstance(t, bytes) else None


def mst_get(car: Car, root: bytes, key: str) -> bytes | None:
    """The record CID stored under ``key`` in the MST rooted at ``root``, or None; CarError
    when a node on the way is missing from the CAR."""
    wanted = key.encode()
    node_cid: bytes | None = root
    for _ in range(MAX_MST_DEPTH):
        if node_cid is None:
            return None
        node = decode_block(car, node_cid)
        left = node.get("l") if isinstance(node, dict) else None
        nxt: bytes | None = left if isinstance(left, bytes) else None
        for entry_key, value, right in _entries(node):
            if entry_key == wanted:
                return value
            if entry_key > wanted:
                break
            nxt = right
        node_cid = nxt
    raise CarError("MST deeper than any real repository")


def mst_items(car: Car, root: bytes, keep: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """(key, record CID) of every entry of the MST rooted at ``root`` that ``keep`` accepts."""
    stack: list[tuple[bytes, int]] = [(root, 0)]
    out: list[tuple[str, bytes]] = []
    while stack:
        cid, depth = stack.pop()
        if depth > MAX_MST_DEPTH:
            raise CarError("MST deeper than any real repository")
        node = decode_block(car, cid)
        left = node.get("l") if isinstance(node, dict) else None
        if isinstance(left, bytes):
            stack.append((left, depth + 1))
        for key, value, right in _entries(node):
            text = key.decode("utf-8", "replace")
            if keep(text):
                out.append((text, value))
            if right is not None:
                stack.append((right, depth + 1))
    yield from sorted(out)
