"""CAR v1 files (the repository export and firehose ``blocks`` format), read with every block
checked against its CID.

A CAR is ``varint(len) header`` then ``varint(len) cid block`` repeated; the header is a
DAG-CBOR map ``{version: 1, roots: [cid]}``. Only CIDv1 with sha2-256 is accepted (what ATProto
repositories use); a block whose bytes do not hash to its CID is refused, so nothing decoded
from a CAR is trusted beyond what its CIDs commit to.
"""

import hashlib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Car", "CarError", "cid_text", "decode_block", "read_car"]

_SHA256 = 0x12
_DAG_CBOR = 0x71
_RAW = 0x55
MAX_CAR_BYTES = 64 << 20
MAX_BLOCKS = 1_000_000


class CarError(ValueError):
    """A CAR file that is malformed, too large, or holds a block not matching its CID."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise CarError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _cid(buf: bytes, pos: int) -> tuple[bytes, int, int]:
    """(CID bytes, codec, end) of the CIDv1 at ``pos``."""
    start = pos
    version, pos = _varint(buf, pos)
    if version != 1:
        raise CarError(f"CID version {version} is not supported (only CIDv1)")
    codec, pos = _varint(buf, pos)
    code, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    if code != _SHA256 or size != 32:
        raise CarError("only sha2-256 CIDs are accepted")
    if codec not in (_DAG_CBOR, _RAW):
        raise CarError(f"CID codec {codec:#x} is not dag-cbor or raw")
    end = pos + size
    if end > len(buf):
        raise CarError("truncated CID")
    return bytes(buf[start:end]), codec, end


@dataclass
class Car:
    """The roots and the blocks (CID bytes -> block bytes) of one CAR file."""

    roots: list[bytes]
    blocks: dict[bytes, bytes] = field(default_factory=dict)


def cid_text(cid: bytes) -> str:
    """The base32 text form (``bafy...``) of binary CID bytes."""
    import libipld

    return str(libipld.encode_cid(cid))


def decode_block(car: Car, cid: bytes) -> Any:
    """The DAG-CBOR value of block ``cid``; CarError when the CAR does not hold it."""
    import libipld

    data = car.blocks.get(cid)
    if data is None:
        raise CarError(f"block {cid_text(cid)} is not in the CAR")
    try:
        return libipld.decode_dag_cbor(data)
    except Exception as exc:  # libipld raises ValueError subclasses of its own
        raise CarError(f"block {cid_text(cid)} is not valid DAG-CBOR: {exc}") from None


def read_car(data: bytes, *, max_bytes: int = MAX_CAR_BYTES, max_blocks: int = MAX_BLOCKS) -> Car:
    """Parse ``data`` as a CAR v1 file, verifying every block's sha2-256 against its CID."""
    import libipld

    if len(data) > max_bytes:
        raise CarError(f"CAR of {len(data)} bytes is over the {max_bytes}-byte limit")
    size, pos = _varint(data, 0)
    if pos + size > len(data):
        raise CarError("truncated CAR header")
    try:
        header = libipld.decode_dag_cbor(data[pos : pos + size])
    except Exception as exc:
        raise CarError(f"CAR header is not DAG-CBOR: {exc}") from None
    if not isinstance(header, dict) or header.get("version") != 1:
        raise CarError("not a CAR v1 header")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, bytes) for r in roots):
        raise CarError("CAR header roots are not CIDs")
    car = Car(roots=[bytes(r) for r in roots])
    pos += size
    while pos < len(data):
        length, pos = _varint(data, pos)
        end = pos + length
        if end > len(data) or length == 0:
            raise CarError("truncated CAR block")
        cid, _codec, body = _cid(data, pos)
        if body > end:
            raise CarError("CAR block shorter than its CID")
        block = bytes(data[body:end])
        if hashlib.sha256(block).digest() != cid[-32:]:
            raise CarError(f"block {cid_text(cid)} does not match its CID")
        car.blocks[cid] = block
        if len(car.blocks) > max_blocks:
            raise CarError(f"CAR holds more than {max_blocks} blocks")
        pos = end
    return car
