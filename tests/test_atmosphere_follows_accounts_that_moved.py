"""An account that moved to another PDS is followed at once, not after the identity cache
expires: when the PDS a kept DID document names cannot be reached or says it does not hold the
account, the document is fetched afresh and the request is made once more where it points.

Against the real local PDS and its in-memory PLC directory; the "old PDS" is a loopback port
where nothing listens (a PDS that was shut down after the move), named by an identity-cache entry
written as the resolver writes them. The fresh document is checked as the first one was: a
directory that serves a document not claiming the handle gets no login, and the password goes
to no PDS that a verified document does not name.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from atdata.atmosphere import AtmosphereClient, AtmosphereSession, LabelRecord, Resolver
from atdata.atmosphere.identity_cache import IdentityCache
from atdata.errors import AuthenticationError
from atmosphere_helpers import loopback_only, new_account  # noqa: F401 - autouse guard
from http_server import FileServer
from services import PDS_TEST_PASSWORD, refused_port


def _doc(did: str, handle: str, pds_url: str) -> dict[str, Any]:
    return {
        "id": did,
        "alsoKnownAs": [f"at://{handle}"],
        "service": [
            {"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": pds_url}
        ],
    }


def _real(pds: dict[str, Any], did: str) -> str:
    """The PDS ``did``'s document names (a fresh lookup, no cache)."""
    return Resolver(plc_url=pds["plc"], disk_cache=False).pds_endpoint(did)


def _keep(plc_url: str, did: str, handle: str, pds_url: str) -> IdentityCache:
    """An identity-cache entry (as a resolver writes it) saying ``did`` lives at ``pds_url``."""
    cache = IdentityCache.default(ttl=300)
    cache.put(plc_url, did, _doc(did, handle, pds_url))
    assert cache.get(plc_url, did) is not None
    return cache


def _kept_pds(cache: IdentityCache, plc_url: str, did: str) -> str | None:
    parts = cache.get(plc_url, did)
    return None if parts is None else str(parts["service"][0]["serviceEndpoint"])


def test_login_by_handle_follows_an_account_whose_kept_pds_is_gone(
    pds: dict[str, Any], home: Path
) -> None:
    handle, did = new_account(pds, "mv")
    gone = f"http://127.0.0.1:{refused_port()}"
    cache = _keep(pds["plc"], did, handle, gone)

    resolver = Resolver(plc_url=pds["plc"], handle_resolver_pds=pds["pds"])
    assert resolver.pds_endpoint(did) == gone  # the kept entry is what login starts from
    session = AtmosphereSession.login(handle, PDS_TEST_PASSWORD, resolver=resolver)

    assert (session.did, session.pds_url) == (did, _real(pds, did))
    assert session.query("com.atproto.server.getSession", {}, "checking")["did"] == did
    assert _kept_pds(cache, pds["plc"], did) == _real(pds, did)  # kept afresh


def test_login_by_did_follows_an_account_whose_kept_pds_is_gone(
    pds: dict[str, Any], home: Path
) -> None:
    handle, did = new_account(pds, "mv")
    _keep(pds["plc"], did, handle, f"http://127.0.0.1:{refused_port()}")
    session = AtmosphereSession.login(did, PDS_TEST_PASSWORD, resolver=Resolver(plc_url=pds["plc"]))
    assert (session.did, session.handle, session.pds_url) == (did, handle, _real(pds, did))


def test_a_wrong_password_is_not_sent_twice(pds: dict[str, Any], home: Path) -> None:
    """The account is where its document says: a refusal there is final (one fresh lookup,
    no second login attempt to the same PDS), and the error is the PDS's."""
    handle, did = new_account(pds, "mv")
    resolver = Resolver(plc_url=pds["plc"], handle_resolver_pds=pds["pds"])
    with pytest.raises(AuthenticationError, match="login as"):
        AtmosphereSession.login(handle, "not-the-password", resolver=resolver)
    # after the lookup afresh the document is kept again, naming the same PDS
    assert resolver.pds_endpoint(did) == _real(pds, did)


def test_the_fresh_document_is_verified_before_the_password_goes_anywhere(
    pds: dict[str, Any], home: Path, http_server: FileServer
) -> None:
    """A directory that now serves a document naming the account's real PDS but not claiming
    the handle: the kept entry's PDS is gone, and login refuses instead of following."""
    handle, did = new_account(pds, "mv")
    directory = http_server  # plays both the PLC directory and the handle resolver
    (directory.root / "xrpc").mkdir()
    (directory.root / "xrpc" / "com.atproto.identity.resolveHandle").write_text(
        json.dumps({"did": did})
    )
    (directory.root / did).write_text(json.dumps(_doc(did, "someone-else.test", pds["pds"])))
    gone = f"http://127.0.0.1:{refused_port()}"
    _keep(directory.url.rstrip("/"), did, handle, gone)

    resolver = Resolver(plc_url=directory.url, handle_resolver_pds=directory.url)
    with pytest.raises(AuthenticationError, match="does not claim the handle"):
        AtmosphereSession.login(handle, PDS_TEST_PASSWORD, resolver=resolver)


def test_reads_follow_an_account_whose_kept_pds_is_gone(pds: dict[str, Any], home: Path) -> None:
    handle, did = new_account(pds, "mv")
    writer = AtmosphereClient(AtmosphereSession.login(pds["pds"], handle, PDS_TEST_PASSWORD))
    label = writer.publish(LabelRecord("moved", f"at://{did}/science.alt.dataset.entry/x", "1"))

    for read in ("get", "list"):
        gone = f"http://127.0.0.1:{refused_port()}"
        cache = _keep(pds["plc"], did, handle, gone)
        reader = AtmosphereClient(resolver=Resolver(plc_url=pds["plc"]))
        assert reader.pds_for(did) == gone
        if read == "get":
            assert reader.get_label(label.uri).value.name == "moved"
        else:
            assert [r.value.name for r in reader.labels(did)] == ["moved"]
        assert reader.pds_for(did) == _real(pds, did)
        assert _kept_pds(cache, pds["plc"], did) == _real(pds, did)
