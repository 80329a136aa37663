"""Content identifiers (docs/format.md §3): CIDv1, dag-cbor, sha2-256, base32 (``bafyrei...``).

A dataset entry's CID covers what the data *is*: its schema reference and, in order, each
shard's checksum, sample count and size. Shard URLs, names, descriptions and timestamps are
left out, so copying shards elsewhere (``insert(..., copy=True)``, another store) keeps the CID,
while any change of bytes or schema changes it.
"""

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import libipld

from ..shards.info import ShardInfo

__all__ = ["cid_of", "dataset_cid", "schema_cid"]

_CIDV1 = 0x01
_DAG_CBOR = 0x71
_SHA2_256 = 0x12
_DIGEST_LEN = 0x20


def cid_of(value: Any) -> str:
    """The CIDv1 (dag-cbor, sha2-256, base32) of a dag-cbor-encodable value.

    >>> cid_of({"a": 1})
    'bafyreihltcnuuyqp2jm24aqydpnlj7b6w3ogwrplomrjtg5rifv44mmjey'
    """
    digest = hashlib.sha256(libipld.encode_dag_cbor(value)).digest()
    cid: str = libipld.encode_cid(bytes((_CIDV1, _DAG_CBOR, _SHA2_256, _DIGEST_LEN)) + digest)
    return cid


def dataset_cid(schema_ref: str | None, shards: Sequence[ShardInfo]) -> str:
    """The CID of a dataset entry: its schema reference and its shards' checksums and sizes."""
    return cid_of(
        {
            "schema": schema_ref,
            "shards": [
                {
                    "checksum": s.checksum.to_dict(),
                    "count": s.count,
                    "size": s.size,
                }
                for s in shards
            ],
        }
    )


def schema_cid(schema_dict: Mapping[str, Any]) -> str:
    """The CID of a schema record's ``schema`` body (name, version, fields)."""
    return cid_of(dict(schema_dict))
