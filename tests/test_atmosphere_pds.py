"""The atmosphere against a real local PDS and PLC directory (tests/pds_harness).

Accounts are created per test. An autouse guard refuses every connection and name lookup that
is not loopback, so nothing here (resolvers included) can reach a public service.
"""

import base64
import dataclasses
import hashlib
import json
import os
import pickle
import time
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import msgpack
import numpy as np
import pytest
from numpy.typing import NDArray

import atdata.sources.at  # noqa: F401 - registers at:// (until sources/__init__ does)
from atdata.atmosphere import (
    AtmosphereClient,
    AtmosphereSession,
    AtUri,
    BlobShard,
    BlobStorage,
    Checksum,
    CodeReference,
    DatasetRecord,
    HttpShard,
    HttpStorage,
    LabelRecord,
    LensRecord,
    RecordValidationError,
    Resolver,
    SchemaRecord,
    XrpcError,
)
from atdata.atmosphere.publish import resolve_dataset
from atdata.errors import (
    AtdataWarning,
    AtmosphereError,
    AuthenticationError,
    IntegrityError,
    SourceError,
)
from atdata.schema import Schema, Shape
from atdata.sources import open_source
from atdata.sources.at import blob_cid, blob_url, verify_blob
from atmosphere_helpers import loopback_only  # noqa: F401 - autouse guard
from http_server import FileServer
from services import PDS_TEST_PASSWORD

pytestmark = pytest.mark.services

SHA = hashlib.sha256(b"x").hexdigest()
NDARRAY_REF = "https://alt.science/schemas/atdata-ndarray-bytes/1.0.0#/$defs/ndarray"


# ---------------------------------------------------------------------------------- fixtures
@dataclasses.dataclass
class Account:
    handle: str
    did: str
    password: str
    pds: str


@pytest.fixture
def new_account(pds: dict[str, Any]) -> Callable[[], Account]:
    from atproto import Client, models

    def make() -> Account:
        handle = f"a{os.urandom(5).hex()}.test"
        out = Client(base_url=pds["pds"]).com.atproto.server.create_account(
            models.ComAtprotoServerCreateAccount.Data(
                handle=handle, email=f"{handle}@example.test", password=PDS_TEST_PASSWORD
            )
        )
        return Account(handle, out.did, PDS_TEST_PASSWORD, pds["pds"])

    return make


@pytest.fixture
def alice(new_account: Callable[[], Account]) -> Account:
    return new_account()


@pytest.fixture
def session(alice: Account) -> AtmosphereSession:
    return AtmosphereSession.login(alice.pds, alice.handle, alice.password)


@pytest.fixture
def client(session: AtmosphereSession, resolver: Resolver) -> AtmosphereClient:
    return AtmosphereClient(session, resolver=resolver)


def _raw_client(account: Account) -> Any:
    """An atproto SDK client, for writing records our own code would refuse to write."""
    from atproto import Client

    c = Client(base_url=account.pds)
    c.login(account.handle, account.password, fetch_bsky_profile=False)
    return c


def _raw_create(account: Account, collection: str, record: dict[str, Any]) -> str:
    from atproto import models

    out = _raw_client(account).com.atproto.repo.create_record(
        models.ComAtprotoRepoCreateRecord.Data(
            repo=account.did, collection=collection, record=record, validate_=False
        )
    )
    return str(out.uri)


@dataclasses.dataclass
class Digit:
    """A small image with its label."""

    image: Annotated[NDArray[np.uint8], Shape(4, 4)]
    label: int


def _schema_entry(client: AtmosphereClient, name: str = "digits") -> tuple[AtUri, AtUri]:
    schema = client.publish_schema(SchemaRecord.from_schema(Schema.from_type(Digit)))
    storage = HttpStorage(
        (HttpShard("https://data.example.com/d-000000.tar", Checksum.sha256(SHA)),)
    )
    entry = client.publish(DatasetRecord(name=name, schema_ref=str(schema.uri), storage=storage))
    return schema.uri, entry.uri


# ----------------------------------------------------------------------------------- session
def test_login_by_handle_or_did_and_credentials_never_show(alice: Account) -> None:
    by_handle = AtmosphereSession.login(alice.pds, "@" + alice.handle, alice.password)
    by_did = AtmosphereSession.login(alice.pds, alice.did, alice.password)
    assert by_handle.did == by_did.did == alice.did
    assert by_did.handle == alice.handle
    exported = json.loads(by_handle.export())
    secrets = [exported["accessJwt"], exported["refreshJwt"], alice.password]
    for text in (repr(by_handle), str(by_handle), repr(AtmosphereClient(by_handle))):
        assert alice.did in text or "AtmosphereClient" in text
        assert not any(s in text for s in secrets)
    with pytest.raises(TypeError, match="export"):
        pickle.dumps(by_handle)


def test_a_wrong_password_is_an_authentication_error_that_does_not_echo_it(alice: Account) -> None:
    with pytest.raises(AuthenticationError) as err:
        AtmosphereSession.login(alice.pds, alice.handle, "not-the-password-123")
    assert "not-the-password-123" not in str(err.value)
    assert alice.handle in str(err.value)
    with pytest.raises(AuthenticationError):
        AtmosphereSession.login(alice.pds, "no-such-user.test", "whatever")


def test_an_exported_session_restores_and_works(
    session: AtmosphereSession, resolver: Resolver
) -> None:
    restored = AtmosphereSession.restore(session.export())
    assert (restored.did, restored.handle, restored.pds_url) == (
        session.did,
        session.handle,
        session.pds_url,
    )
    uri = (
        AtmosphereClient(restored, resolver=resolver)
        .publish(LabelRecord("x", f"at://{session.did}/science.alt.dataset.entry/3n2ukhgqvrc2u"))
        .uri
    )
    assert uri.did == session.did
    for junk in ("", "{}", "not json", json.dumps({**json.loads(session.export()), "v": 9})):
        with pytest.raises(AuthenticationError):
            AtmosphereSession.restore(junk)


def test_logging_out_revokes_the_refresh_token(alice: Account) -> None:
    s = AtmosphereSession.login(alice.pds, alice.handle, alice.password)
    saved = s.export()
    s.logout()
    assert "closed" in repr(s)
    with pytest.raises(AuthenticationError):
        s.export()
    # the access token lives until it expires (JWTs are stateless); the refresh token is dead
    restored = AtmosphereSession.restore(saved, verify=False)
    with pytest.raises(AuthenticationError):
        restored.refresh()


def test_tokens_are_refreshed_before_they_expire_and_reported(
    session: AtmosphereSession, resolver: Resolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    s = AtmosphereSession.restore(session.export(), on_refresh=seen.append)
    before = json.loads(s.export())
    later = time.time() + timedelta(hours=3).total_seconds()  # past the access token's expiry
    monkeypatch.setattr(s, "_now", lambda: later)
    AtmosphereClient(s, resolver=resolver).publish(
        LabelRecord("after-refresh", f"at://{s.did}/science.alt.dataset.entry/3n2ukhgqvrc2u")
    )
    after = json.loads(s.export())
    assert after["refreshJwt"] != before["refreshJwt"]  # (access tokens differ only by iat second)
    assert seen and json.loads(seen[-1]) == after
    monkeypatch.undo()
    assert AtmosphereSession.restore(seen[-1]).did == s.did


def test_explicit_refresh_replaces_the_tokens(session: AtmosphereSession) -> None:
    before = json.loads(session.export())
    session.refresh()
    after = json.loads(session.export())
    assert after["refreshJwt"] != before["refreshJwt"]
    assert AtmosphereSession.restore(session.export()).did == session.did


# ----------------------------------------------------------------------------------- records
def test_every_record_kind_round_trips_through_the_pds(client: AtmosphereClient) -> None:
    schema_uri, entry_uri = _schema_entry(client)
    got_schema = client.get_schema(schema_uri)
    assert got_schema.value.to_schema() == Schema.from_type(Digit)
    assert client.get_entry(entry_uri).value.name == "digits"

    ref = CodeReference(
        "https://github.com/org/lenses",
        "0123456789abcdef0123456789abcdef01234567",
        "lenses/digits.py:flip",
    )
    lens = LensRecord("flip", str(schema_uri), str(schema_uri), ref, ref, description="mirror")
    lens_uri = client.publish(lens).uri
    assert client.get_lens(lens_uri).value == lens

    label = LabelRecord("digits", str(entry_uri), "1")
    label_uri = client.publish(label).uri
    assert client.get_label(label_uri).value == label

    raw = client.get_record(entry_uri)
    assert raw.value["$type"] == "science.alt.dataset.entry"
    assert raw.cid.startswith("bafyrei")
    with pytest.raises(AtmosphereError, match=r"not a science\.alt\.dataset\.lens"):
        client.get_lens(entry_uri)


def test_an_identical_schema_is_published_once(client: AtmosphereClient) -> None:
    first = client.publish_schema(SchemaRecord.from_schema(Schema.from_type(Digit)))
    again = client.publish_schema(SchemaRecord.from_schema(Schema.from_type(Digit)))
    assert (again.uri, again.cid) == (first.uri, first.cid)
    bumped = client.publish_schema(
        SchemaRecord.from_schema(Schema.from_type(Digit).with_version("1.1.0"))
    )
    assert bumped.uri != first.uri
    assert len(client.list_schemas(client.session.did)) == 2  # type: ignore[union-attr]


def test_listing_follows_cursors_through_every_page(
    client: AtmosphereClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = f"at://{client.session.did}/science.alt.dataset.entry/3n2ukhgqvrc2u"  # type: ignore[union-attr]
    made = {str(client.publish(LabelRecord(f"l{i}", entry, str(i))).uri) for i in range(7)}
    pages: list[dict[str, Any]] = []
    real = client._http.xrpc

    def counting(service: str, nsid: str, params: Any, **kw: Any) -> dict[str, Any]:
        out = real(service, nsid, params, **kw)
        if nsid == "com.atproto.repo.listRecords":
            pages.append(out)
        return out

    monkeypatch.setattr(client._http, "xrpc", counting)
    listed = list(client.labels(client.session.did, page_size=3))  # type: ignore[union-attr]
    assert {str(s.uri) for s in listed} == made
    assert len([p for p in pages if p["records"]]) == 3  # 3 + 3 + 1
    assert client.list_records(client.session.did, "science.alt.dataset.label", page_size=100)  # type: ignore[union-attr]


def test_a_record_that_does_not_exist_is_a_clear_error(client: AtmosphereClient) -> None:
    with pytest.raises(XrpcError) as err:
        client.get_entry(f"at://{client.session.did}/science.alt.dataset.entry/3n2ukhgqvrc2u")  # type: ignore[union-attr]
    assert err.value.error == "RecordNotFound"


# ------------------------------------------------------------------------------------- blobs
def test_blobs_upload_and_come_back_verified(client: AtmosphereClient, resolver: Resolver) -> None:
    data = os.urandom(300_000)
    ref = client.upload_blob(data)
    assert ref.cid == blob_cid(data) and ref.size == len(data)
    assert ref.mime_type == "application/x-tar"
    schema_uri, _ = _schema_entry(client)
    client.publish(DatasetRecord("blobbed", str(schema_uri), BlobStorage((BlobShard(ref),))))
    did = client.session.did  # type: ignore[union-attr]

    assert client.get_blob(did, ref.cid) == data
    pinned = open_source(client.blob_url(did, ref.cid))
    assert pinned.read_range(1000, 10) == data[1000:1010]
    assert pinned.open().read() == data
    with resolver.activate():
        located = open_source(blob_url(did, ref.cid))
    assert located.open().read() == data


def test_bytes_that_do_not_match_the_cid_are_refused(
    client: AtmosphereClient, http_server: FileServer
) -> None:
    data, other = b"the real shard" * 100, b"something else" * 100
    ref = client.upload_blob(data)
    schema_uri, _ = _schema_entry(client)
    client.publish(DatasetRecord("blobbed", str(schema_uri), BlobStorage((BlobShard(ref),))))
    did = client.session.did  # type: ignore[union-attr]
    fetched = client.get_blob(did, ref.cid)
    with pytest.raises(IntegrityError, match="do not match"):
        verify_blob(fetched, blob_cid(other))

    # a PDS (or anything in between) that answers with other bytes
    (http_server.root / "xrpc").mkdir()
    (http_server.root / "xrpc" / "com.atproto.sync.getBlob").write_bytes(other)
    src = open_source(blob_url(did, ref.cid, pds=http_server.url))
    with pytest.raises(IntegrityError, match=ref.cid):
        src.open()
    with pytest.raises(IntegrityError):
        src.read_range(0, 4)


def test_a_blob_over_the_limit_is_refused_before_sending(
    client: AtmosphereClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = client.session
    assert session is not None
    assert session.blob_upload_limit() == 100 * 1024 * 1024  # what the harness PDS announces
    assert client.max_blob_bytes() == 50 * 1024 * 1024  # the lexicon's maxSize is lower
    monkeypatch.setattr(session, "_blob_limit", 4096)  # a PDS with a small limit
    sent: list[int] = []
    monkeypatch.setattr(session, "auth_headers", lambda: sent.append(1) or {})
    with pytest.raises(AtmosphereError, match="4096-byte limit"):
        client.upload_blob(b"x" * 4097)
    assert sent == []


# ------------------------------------------------------------------------------ hostile input
def _hostile_entries(schema_uri: str, marker: Path) -> dict[str, dict[str, Any]]:
    good = DatasetRecord(
        "fine",
        schema_uri,
        HttpStorage((HttpShard("https://x.example.com/a.tar", Checksum.sha256(SHA)),)),
    ).to_record()

    def variant(**changes: Any) -> dict[str, Any]:
        rec = json.loads(json.dumps(good))
        for k, v in changes.items():
            if k == "url":
                rec["storage"]["shards"][0]["url"] = v
            else:
                rec[k] = v
        return rec

    return {
        "pipe": variant(url=f"pipe:touch {marker}"),
        "file": variant(url="file:///etc/passwd"),
        "path name": variant(name="../../../tmp/evil"),
        "huge description": variant(description="x" * 200_000),
        "wrong type": variant(
            storage={"$type": "science.alt.dataset.storageHttp", "shards": "all"}
        ),
    }


def test_hostile_records_from_the_network_are_refused_and_run_nothing(
    client: AtmosphereClient, alice: Account, resolver: Resolver, tmp_path: Path
) -> None:
    schema_uri, good_uri = _schema_entry(client, "fine")
    marker = tmp_path / "pwned"
    uris = {
        case: _raw_create(alice, "science.alt.dataset.entry", rec)
        for case, rec in _hostile_entries(str(schema_uri), marker).items()
    }
    for case, uri in uris.items():
        with pytest.raises(RecordValidationError) as err:
            client.get_entry(uri)
        assert uri in str(err.value), case
        with pytest.raises(RecordValidationError):
            resolve_dataset(uri, resolver=resolver)
    assert not marker.exists()

    with pytest.raises(RecordValidationError):
        client.list_entries(alice.did)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        valid = client.list_entries(alice.did, on_invalid="skip")
    assert [str(e.uri) for e in valid] == [str(good_uri)]
    assert len([w for w in caught if issubclass(w.category, AtdataWarning)]) == len(uris)


def test_a_schema_record_with_a_code_like_field_is_refused(
    client: AtmosphereClient, alice: Account
) -> None:
    rec = SchemaRecord.from_schema(Schema.from_type(Digit)).to_record()
    rec["schema"]["properties"]["__reduce__"] = {"type": "string"}
    rec["schema"]["propertyOrder"].append("__reduce__")
    uri = _raw_create(alice, "science.alt.dataset.schema", rec)
    with pytest.raises(RecordValidationError, match="__reduce__"):
        client.get_schema(uri)


# ---------------------------------------------------------------------------------- identity
def test_handles_and_dids_resolve_through_the_local_pds_and_plc(
    alice: Account, resolver: Resolver, pds: dict[str, Any]
) -> None:
    ident = resolver.resolve("@" + alice.handle.upper())
    assert (ident.did, ident.handle) == (alice.did, alice.handle)
    assert ident.pds == pds["pdsPublicUrl"]
    assert resolver.resolve(alice.did).did == alice.did
    with pytest.raises(AtmosphereError, match=r"nobody\.test"):
        resolver.resolve_handle("nobody.test")
    with pytest.raises(AtmosphereError, match="not known"):
        resolver.pds_endpoint("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
    bare = Resolver(plc_url=pds["plc"])
    with pytest.raises(AtmosphereError, match="no handle_resolver_pds"):
        bare.resolve_handle(alice.handle)


def test_a_handle_whose_did_document_does_not_claim_it_is_refused(
    alice: Account, pds: dict[str, Any], http_server: FileServer
) -> None:
    (http_server.root / "xrpc").mkdir()
    (http_server.root / "xrpc" / "com.atproto.identity.resolveHandle").write_text(
        json.dumps({"did": alice.did})
    )
    lying = Resolver(plc_url=pds["plc"], handle_resolver_pds=http_server.url)
    with pytest.raises(AtmosphereError, match="does not claim"):
        lying.resolve_handle("mallory.test")


def _did_web(server: FileServer, endpoint: Any, **extra: Any) -> str:
    did = f"did:web:127.0.0.1%3A{server.port}"
    doc = {
        "id": did,
        "alsoKnownAs": [],
        "service": [
            {"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": endpoint}
        ],
        **extra,
    }
    (server.root / ".well-known").mkdir(exist_ok=True)
    (server.root / ".well-known" / "did.json").write_text(json.dumps(doc))
    return did


def test_did_web_documents_are_read_from_the_host(
    resolver: Resolver, http_server: FileServer, pds: dict[str, Any]
) -> None:
    did = _did_web(http_server, pds["pdsPublicUrl"])
    assert resolver.pds_endpoint(did) == pds["pdsPublicUrl"]
    assert http_server.count("GET", "/.well-known/did.json") == 1
    resolver.pds_endpoint(did)
    assert http_server.count("GET", "/.well-known/did.json") == 1  # cached


@pytest.mark.parametrize(
    "doc",
    [
        {"endpoint": "file:///etc/passwd"},
        {"endpoint": "http://user:pw@127.0.0.1/"},
        {"endpoint": ["http://127.0.0.1"]},
        {"endpoint": "http://127.0.0.1", "id": "did:web:someone.else"},
    ],
)
def test_hostile_did_documents_are_refused(
    resolver: Resolver, http_server: FileServer, doc: dict[str, Any]
) -> None:
    extra = {"id": doc["id"]} if "id" in doc else {}
    did = _did_web(http_server, doc["endpoint"], **extra)
    with pytest.raises(AtmosphereError):
        resolver.pds_endpoint(did)


def test_a_pds_answering_a_different_record_or_too_much_is_refused(
    resolver: Resolver, http_server: FileServer, alice: Account
) -> None:
    did = _did_web(http_server, http_server.url)
    client = AtmosphereClient(resolver=resolver)
    xrpc = http_server.root / "xrpc"
    xrpc.mkdir()
    other = f"at://{alice.did}/science.alt.dataset.entry/3n2ukhgqvrc2u"
    (xrpc / "com.atproto.repo.getRecord").write_text(
        json.dumps({"uri": other, "cid": blob_cid(b"x"), "value": {}})
    )
    with pytest.raises(AtmosphereError, match="from elsewhere"):
        client.get_record(f"at://{did}/science.alt.dataset.entry/3n2ukhgqvrc2u")
    (xrpc / "com.atproto.repo.getRecord").write_bytes(b"{" + b" " * (5 << 20) + b"}")
    with pytest.raises(AtmosphereError, match="bytes"):
        client.get_record(f"at://{did}/science.alt.dataset.entry/3n2ukhgqvrc2u")
    page = {"records": [], "cursor": "again"}
    (xrpc / "com.atproto.repo.listRecords").write_text(json.dumps({**page, "records": [{"x": 1}]}))
    with pytest.raises(AtmosphereError):
        client.list_entries(did)


# ------------------------------------------------------------------------- across accounts
def test_a_second_account_reads_the_first_accounts_records_and_blobs(
    client: AtmosphereClient, alice: Account, new_account: Callable[[], Account], resolver: Resolver
) -> None:
    data = os.urandom(50_000)
    ref = client.upload_blob(data)
    schema_uri, _ = _schema_entry(client)
    entry = client.publish(DatasetRecord("shared", str(schema_uri), BlobStorage((BlobShard(ref),))))
    client.publish(LabelRecord("shared", str(entry.uri), "1"))

    bob = new_account()
    bob_client = AtmosphereClient(
        AtmosphereSession.login(bob.pds, bob.handle, bob.password), resolver=resolver
    )
    assert [
        str(e.uri) for e in bob_client.list_entries("@" + alice.handle) if e.value.name == "shared"
    ] == [str(entry.uri)]
    assert bob_client.get_blob(alice.did, ref.cid) == data
    assert bob_client.list_entries(bob.did) == []
    anonymous = AtmosphereClient(resolver=resolver)
    resolved = resolve_dataset(f"@{alice.handle}/shared", client=anonymous)
    assert resolved.uri == entry.uri
    assert open_source(resolved.urls[0]).open().read() == data
    with pytest.raises(AtmosphereError, match="session"):
        anonymous.publish(LabelRecord("x", str(entry.uri)))


# ---------------------------------------------------------------------- atdata 0.7 interop
@pytest.mark.filterwarnings("ignore:Use .content=:DeprecationWarning")
def test_records_in_atdata_07_shape_resolve_and_load(
    alice: Account, resolver: Resolver, tmp_path: Path
) -> None:
    """Records built by hand from docs/format.md §6 the way atdata 0.7 writes them: no dtype or
    shape, no propertyOrder, blobs uploaded without a MIME type, msgpack metadata bytes."""
    from atdata import write_samples
    from atdata.dataset import Dataset
    from atdata.shards.shardset import ShardSet

    samples = [Digit(np.full((4, 4), i, np.uint8), i) for i in range(20)]
    (shard,) = write_samples(samples, str(tmp_path / "digits-%06d.tar")).shard_infos
    data = Path(shard.url).read_bytes()
    raw = _raw_client(alice)
    blob = raw.upload_blob(data).blob.model_dump(by_alias=True)  # mimeType "*/*", like 0.7
    schema_uri = _raw_create(
        alice,
        "science.alt.dataset.schema",
        {
            "$type": "science.alt.dataset.schema",
            "name": "Digit",
            "version": "1.0.0",
            "schemaType": "jsonSchema",
            "schema": {
                "$type": "science.alt.dataset.schema#jsonSchemaFormat",
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {"image": {"$ref": NDARRAY_REF}, "label": {"type": "integer"}},
                "required": ["image", "label"],
                "arrayFormatVersions": {"ndarrayBytes": "1.0.0"},
            },
            "createdAt": "2025-06-01T12:00:00.000Z",
        },
    )
    entry_uri = _raw_create(
        alice,
        "science.alt.dataset.entry",
        {
            "$type": "science.alt.dataset.entry",
            "name": "digits",
            "schemaRef": schema_uri,
            "storage": {"$type": "science.alt.dataset.storageBlobs", "blobs": [{"blob": blob}]},
            "metadata": {"$bytes": base64.b64encode(msgpack.packb({"split": "train"})).decode()},
            "createdAt": "2025-06-01T12:00:01.000Z",
        },
    )
    _raw_create(
        alice,
        "science.alt.dataset.label",
        {
            "$type": "science.alt.dataset.label",
            "name": "digits",
            "datasetUri": entry_uri,
            "version": "1.0.0",
            "createdAt": "2025-06-01T12:00:02.000Z",
        },
    )
    for ref in (f"@{alice.handle}/digits", f"@{alice.handle}/digits@1.0.0", entry_uri):
        resolved = resolve_dataset(ref, resolver=resolver)
        assert str(resolved.uri) == entry_uri
    assert resolved.entry.metadata == {"split": "train"}
    image = resolved.schema.field("image").type
    assert (image.kind, image.dtype, image.shape) == ("array", None, None)
    # a ShardSet, so that the URLs' "?pds=" is not taken for a glob (see .planning/atmosphere.md)
    got = list(Dataset(ShardSet(resolved.urls), resolved.sample_type()))
    assert [int(s.label) for s in got] == list(range(20))
    assert all(np.array_equal(s.image, np.full((4, 4), i, np.uint8)) for i, s in enumerate(got))
    with pytest.raises(SourceError):  # a record URI is not a shard URL
        open_source(entry_uri).open()


def test_an_unknown_label_or_name_is_not_found(
    client: AtmosphereClient, resolver: Resolver
) -> None:
    from atdata.errors import NotFoundError

    handle = client.session.handle  # type: ignore[union-attr]
    with pytest.raises(NotFoundError):
        resolve_dataset(f"@{handle}/nothing", resolver=resolver)
    _schema_entry(client, "unlabelled")
    assert resolve_dataset(f"@{handle}/unlabelled", resolver=resolver).entry.name == "unlabelled"
    with pytest.raises(NotFoundError):
        resolve_dataset(f"@{handle}/unlabelled@2", resolver=resolver)
