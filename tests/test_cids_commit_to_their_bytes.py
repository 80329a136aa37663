"""CIDs computed and checked in one place (atdata.net.ids): a blob CID names exactly its bytes,
anything but a raw-codec sha2-256 CIDv1 is refused as unverifiable."""

import hashlib

import pytest

from atdata.errors import IntegrityError
from atdata.net.ids import (
    blob_cid,
    cid_digest,
    cid_of_sha256,
    is_cid,
    is_did,
    is_nsid,
    record_cid,
    verify_blob,
)

DATA = b"shard bytes" * 100


def test_a_blob_cid_commits_to_the_sha256_of_its_bytes() -> None:
    cid = blob_cid(DATA)
    assert cid.startswith("bafkrei") and is_cid(cid)
    assert cid_digest(cid, "here") == hashlib.sha256(DATA).digest()
    assert cid_of_sha256(hashlib.sha256(DATA).digest()) == cid
    verify_blob(DATA, cid)
    with pytest.raises(IntegrityError, match="do not match"):
        verify_blob(DATA + b"!", cid, where="at://x")


def test_a_record_cid_is_not_accepted_as_a_blob_cid() -> None:
    cid = record_cid({"name": "x", "version": 1})
    assert cid.startswith("bafyrei") and is_cid(cid)
    assert record_cid({"version": 1, "name": "x"}) == cid  # DAG-CBOR: key order does not matter
    with pytest.raises(IntegrityError, match="codec 0x71"):
        cid_digest(cid, "here")


@pytest.mark.parametrize("bad", ["", "Qm" + "a" * 44, "b" + "1" * 50, "bafkrei" + "a" * 300, 7])
def test_what_is_not_a_base32_cidv1_is_refused(bad: object) -> None:
    assert not is_cid(bad)
    with pytest.raises(IntegrityError):
        cid_digest(bad, "here")


def test_identifiers_are_matched_whole() -> None:
    assert is_did("did:plc:abc123") and not is_did("did:plc:abc123\n")
    assert is_nsid("science.alt.dataset.entry") and not is_nsid("science")
