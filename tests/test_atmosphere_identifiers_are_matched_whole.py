"""Identifiers from records and user input are matched whole: a trailing newline is not a DID."""

import pytest

from atdata.atmosphere.uri import AtUri, is_cid, is_did, is_handle, is_nsid, is_record_key
from atdata.errors import AtdataError
from atdata.sources.at import parse_blob_url

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


@pytest.mark.parametrize(
    ("check", "good"),
    [
        (is_did, "did:plc:abc234"),
        (is_handle, "alice.test"),
        (is_nsid, "science.alt.dataset.entry"),
        (is_record_key, "3jzfcijpj2z2a"),
        (is_cid, CID),
    ],
)
def test_a_trailing_newline_is_refused(check, good):
    assert check(good)
    assert not check(good + "\n")


def test_at_uris_and_blob_urls_with_a_trailing_newline_are_refused():
    assert AtUri.parse("at://did:plc:abc234/science.alt.dataset.entry/3jzfcijpj2z2a")
    with pytest.raises((AtdataError, ValueError)):
        AtUri.parse("at://did:plc:abc234/science.alt.dataset.entry/3jzfcijpj2z2a\n")
    assert parse_blob_url(f"at://did:plc:abc234/blob/{CID}")[1] == CID
    with pytest.raises((AtdataError, ValueError)):
        parse_blob_url(f"at://did:plc:abc234/blob/{CID}\n")
