"""Where an account lives (its handles and PDS, from its DID document) is kept on disk for a
short time, so that a new process loading ``@handle/name`` skips the document fetch; an entry
that is stale, damaged, for another DID or another directory is never used.

A real HTTP server on loopback plays the PLC directory (``/<did>``) and the handle resolver.
"""

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from atdata.atmosphere import Resolver
from atdata.atmosphere.identity_cache import IdentityCache
from atdata.errors import AtmosphereError
from atmosphere_helpers import loopback_only  # noqa: F401 - autouse guard
from http_server import FileServer

DID = "did:plc:abcdefghijklmnopqrstuvwx"
HANDLE = "alice.test"
PDS = "http://127.0.0.1:9/"


def _doc(did: str = DID, handle: str = HANDLE, pds: str = PDS) -> dict[str, Any]:
    return {
        "id": did,
        "alsoKnownAs": [f"at://{handle}"],
        "verificationMethod": [
            {"id": f"{did}#atproto", "type": "Multikey", "publicKeyMultibase": "zSECRETISH"}
        ],
        "service": [
            {"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": pds}
        ],
    }


@pytest.fixture
def plc(http_server: FileServer, home: Path) -> FileServer:
    """The server answers DID's document and resolves every handle to DID."""
    (http_server.root / DID).write_text(json.dumps(_doc()))
    (http_server.root / "xrpc").mkdir()
    (http_server.root / "xrpc" / "com.atproto.identity.resolveHandle").write_text(
        json.dumps({"did": DID})
    )
    return http_server


def _resolver(server: FileServer, **kwargs: Any) -> Resolver:
    return Resolver(plc_url=server.url, handle_resolver_pds=server.url, **kwargs)


def _fetches(server: FileServer, did: str = DID) -> int:
    return sum(1 for r in server.requests if r.method == "GET" and r.path.endswith(did))


def _entry_file(resolver: Resolver) -> Path:
    assert resolver.disk_cache is not None
    (path,) = resolver.disk_cache.directory.glob("*.json")
    return path


def test_a_new_resolver_finds_the_pds_without_fetching_the_document_again(
    plc: FileServer, home: Path
) -> None:
    first = _resolver(plc)
    assert first.resolve(f"@{HANDLE}").pds == PDS.rstrip("/")
    assert _fetches(plc) == 1
    kept = _entry_file(first)
    assert kept.is_relative_to(home / "cache" / "identity")
    assert "verificationMethod" not in kept.read_text()  # never keys

    second = _resolver(plc)
    who = second.resolve(f"@{HANDLE}")
    assert (who.did, who.pds) == (DID, PDS.rstrip("/"))
    assert second.pds_endpoint(DID) == PDS.rstrip("/")
    assert _fetches(plc) == 1
    # keys (signature checks) always come from a fetched document
    assert second.did_document(DID)["verificationMethod"]
    assert _fetches(plc) == 2

    _resolver(plc, disk_cache=False).pds_endpoint(DID)
    assert _fetches(plc) == 3


def _rewrite(path: Path, change: Any) -> None:
    entry = json.loads(path.read_text())
    change(entry)
    path.write_text(json.dumps(entry))


@pytest.mark.parametrize(
    "age",
    [pytest.param(301.0, id="expired"), pytest.param(-3600.0, id="written-in-the-future")],
)
def test_an_entry_outside_its_time_is_not_used(plc: FileServer, age: float) -> None:
    first = _resolver(plc)
    first.pds_endpoint(DID)
    _rewrite(_entry_file(first), lambda e: e.update(written=time.time() - age))
    _resolver(plc).pds_endpoint(DID)
    assert _fetches(plc) == 2


def _set_pds(entry: dict[str, Any], value: Any) -> None:
    entry["document"]["service"][0]["serviceEndpoint"] = value


DAMAGE = {
    "not-json": lambda p: p.write_bytes(b"\x00\xffnot json"),
    "truncated": lambda p: p.write_text(p.read_text()[:40]),
    "a-list": lambda p: p.write_text("[]"),
    "too-large": lambda p: p.write_text(p.read_text() + " " * (70 * 1024)),
    "other-version": lambda p: _rewrite(p, lambda e: e.update(version=2)),
    "written-is-text": lambda p: _rewrite(p, lambda e: e.update(written="now")),
    "written-is-bool": lambda p: _rewrite(p, lambda e: e.update(written=True)),
    "other-did-inside": lambda p: _rewrite(p, lambda e: e.update(did="did:plc:" + "z" * 24)),
    "other-directory-inside": lambda p: _rewrite(p, lambda e: e.update(service="http://x")),
    "document-for-another-did": lambda p: _rewrite(
        p, lambda e: e["document"].update(id="did:plc:" + "z" * 24)
    ),
    "endpoint-not-text": lambda p: _rewrite(p, lambda e: _set_pds(e, ["http://evil"])),
    "extra-field": lambda p: _rewrite(p, lambda e: e["document"].update(keys=[1])),
    "no-document": lambda p: _rewrite(p, lambda e: e.pop("document")),
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_damaged_entry_is_ignored_removed_and_fetched_again(plc: FileServer, damage: str) -> None:
    first = _resolver(plc)
    first.pds_endpoint(DID)
    path = _entry_file(first)
    DAMAGE[damage](path)
    second = _resolver(plc)
    assert second.resolve(HANDLE).pds == PDS.rstrip("/")
    assert _fetches(plc) == 2
    assert json.loads(path.read_text())["document"]["id"] == DID  # rewritten, sound again


def test_an_entry_from_another_directory_is_never_used(plc: FileServer, tmp_path: Path) -> None:
    # the same DID through a second "PLC directory" that says another PDS
    (tmp_path / "other").mkdir()
    with FileServer(tmp_path / "other") as other:
        (other.root / DID).write_text(json.dumps(_doc(pds="http://127.0.0.1:10")))
        _resolver(plc).pds_endpoint(DID)
        assert Resolver(plc_url=other.url).pds_endpoint(DID) == "http://127.0.0.1:10"
        assert _resolver(plc).pds_endpoint(DID) == PDS.rstrip("/")
        assert Resolver(plc_url=other.url).pds_endpoint(DID) == "http://127.0.0.1:10"
        assert (_fetches(plc), _fetches(other)) == (1, 1)


def test_a_kept_document_that_does_not_claim_the_handle_is_asked_for_again(
    plc: FileServer,
) -> None:
    first = _resolver(plc)
    first.pds_endpoint(DID)
    _rewrite(_entry_file(first), lambda e: e["document"].update(alsoKnownAs=["at://bob.test"]))
    assert _resolver(plc).resolve_handle(HANDLE) == DID
    assert _fetches(plc) == 2

    # the directory itself no longer claims it: refused, whatever was kept
    (plc.root / DID).write_text(json.dumps(_doc(handle="bob.test")))
    _resolver(plc).forget(DID)
    with pytest.raises(AtmosphereError, match="does not claim the handle"):
        _resolver(plc).resolve_handle(HANDLE)


def test_forget_drops_the_entry_on_disk(plc: FileServer) -> None:
    first = _resolver(plc)
    first.pds_endpoint(DID)
    first.forget(DID)
    assert first.disk_cache is not None
    assert not list(first.disk_cache.directory.glob("*.json"))
    _resolver(plc).pds_endpoint(DID)
    assert _fetches(plc) == 2


def test_the_cache_keeps_at_most_max_entries_the_newest(tmp_path: Path) -> None:
    cache = IdentityCache(tmp_path / "ids", ttl=300, max_entries=3)
    dids = [f"did:plc:{chr(ord('a') + i) * 24}" for i in range(5)]
    for i, did in enumerate(dids):
        cache.put("http://plc", did, _doc(did=did))
        for path in cache.directory.glob("*.json"):  # older than the next one, whatever the clock
            if os.stat(path).st_mtime > 1000 + i:
                os.utime(path, (1000 + i, 1000 + i))
    assert len(list(cache.directory.glob("*.json"))) == 3
    assert [cache.get("http://plc", did) is not None for did in dids] == [False, False] + [True] * 3
