"""Datasets published as PDS blobs carry each shard's manifest (and offset index) as blobs of
their own, referenced from the shard's record entry, so a query on a dataset loaded by
``@handle/name`` skips the shards the manifests rule out without downloading them. A manifest
blob that is not what the record's CID says, or that belongs to another shard, is ignored and the
query still answers exactly what ``filter`` answers. Runs against the real local PDS; getBlob
requests are counted at the transport seam (``fetch_body``), with the real transport under it."""

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import atdata.sources.at as at_source
from atdata.atmosphere import AtmosphereClient, AtmosphereSession, BlobStorage, Resolver
from atdata.atmosphere.open_dataset import load_reference
from atdata.atmosphere.publish import publish_dataset, resolve_dataset
from atdata.dataset import Dataset
from atdata.errors import AtdataWarning
from atdata.index import Index
from atdata.shards.shardset import ShardSet
from atmosphere_helpers import (
    loopback_only,  # noqa: F401 - autouse guard
    new_account_session,
)
from query_helpers import Row, make_rows

pytestmark = pytest.mark.services


@pytest.fixture
def session(pds: dict[str, Any]) -> AtmosphereSession:
    return new_account_session(pds)  # type: ignore[no-any-return]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    with Index(home=tmp_path / "home") as ix:
        yield ix


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The CIDs of the blobs fetched from the PDS, in order."""
    cids: list[str] = []
    real = at_source.fetch_body

    def counting(url: str, **kw: Any) -> int:
        cids.append(str((kw.get("params") or {}).get("cid")))
        return real(url, **kw)

    monkeypatch.setattr(at_source, "fetch_body", counting)
    return cids


def _publish(index: Index, session: AtmosphereSession) -> tuple[BlobStorage, Any]:
    index.write(make_rows(200, 3, sort=True), "rows", maxcount=20)
    published = publish_dataset(index, "rows", to=session, storage="blobs")
    storage = published.entry.value.storage
    assert isinstance(storage, BlobStorage) and len(storage.blobs) == 10
    assert all(b.manifest is not None and b.offsets is not None for b in storage.blobs)
    return storage, published


def _keys(ds: Any) -> list[str]:
    return [s.id for s in ds]


def test_a_query_by_handle_downloads_only_the_shards_its_manifests_keep(
    index: Index, session: AtmosphereSession, resolver: Resolver, fetched: list[str]
) -> None:
    storage, _ = _publish(index, session)
    plain = load_reference(f"@{session.handle}/rows", Row, resolver=resolver, cache=False)
    want = _keys(plain.filter(lambda s: s.label == 7))
    assert want
    holding = {
        b.blob.cid
        for b, labels in zip(
            storage.blobs, _labels_per_blob(f"@{session.handle}/rows", resolver), strict=True
        )
        if 7 in labels
    }
    assert 0 < len(holding) < len(storage.blobs)

    fetched.clear()
    ds = load_reference(f"@{session.handle}/rows", Row, resolver=resolver, cache=False)
    assert _keys(ds.where(ds.fields.label == 7)) == want
    shard_cids = {b.blob.cid for b in storage.blobs}
    assert {c for c in fetched if c in shard_cids} == holding  # the others were never fetched
    assert ds.count("label == 7") == len(want)


def _labels_per_blob(ref: str, resolver: Resolver) -> list[set[int]]:
    urls = resolve_dataset(ref, resolver=resolver).urls
    return [{s.label for s in Dataset(ShardSet([u]), Row)} for u in urls]


def test_a_manifest_blob_of_another_shard_or_with_wrong_bytes_is_ignored(
    index: Index,
    session: AtmosphereSession,
    resolver: Resolver,
    fetched: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage, published = _publish(index, session)
    plain = load_reference(f"@{session.handle}/rows", Row, resolver=resolver, cache=False)
    want = _keys(plain.filter(lambda s: s.label == 7))

    # a record whose shards name each other's manifests (valid blobs, wrong shard)
    blobs = storage.blobs
    swapped = tuple(
        replace(b, manifest=blobs[(i + 1) % len(blobs)].manifest) for i, b in enumerate(blobs)
    )
    client = AtmosphereClient(session, resolver=resolver)
    record = replace(published.entry.value, storage=BlobStorage(swapped))
    hostile = client.publish(record)
    ds = load_reference(str(hostile.uri), Row, resolver=resolver, cache=False)
    with pytest.warns(AtdataWarning, match="manifest"):
        assert _keys(ds.where(ds.fields.label == 7)) == want

    # bytes that do not hash to the manifest's CID (a lying PDS) are refused before use
    manifest_cids = {b.manifest.cid for b in blobs if b.manifest is not None}
    real = at_source.fetch_body

    def tamper(url: str, **kw: Any) -> int:
        on_chunk: Callable[[bytes], object] = kw["on_chunk"]
        if (kw.get("params") or {}).get("cid") in manifest_cids:
            kw["on_chunk"] = lambda chunk: on_chunk(chunk[:-1] + bytes([chunk[-1] ^ 1]))
        return real(url, **kw)

    monkeypatch.setattr(at_source, "fetch_body", tamper)
    ds = load_reference(f"@{session.handle}/rows", Row, resolver=resolver, cache=False)
    with pytest.warns(AtdataWarning, match="manifest"):
        assert _keys(ds.where(ds.fields.label == 7)) == want


_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
_OTHER = "bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba"


def test_the_manifest_field_round_trips_and_records_without_it_stay_valid() -> None:
    from atdata.atmosphere.storage import BlobRef, BlobShard

    plain = {"blob": {"$type": "blob", "ref": {"$link": _CID}, "mimeType": "x", "size": 9}}
    shard = BlobShard.from_dict(plain)
    assert shard.manifest is None and shard.offsets is None and shard.sidecars() == {}
    assert "manifest" not in shard.to_dict()
    withm = replace(shard, manifest=BlobRef(_OTHER, 3, "application/octet-stream"))
    data = withm.to_dict()
    assert data["manifest"]["ref"] == {"$link": _OTHER}
    assert BlobShard.from_dict(data) == withm
    url = BlobStorage((withm,)).shard_urls("did:plc:abcdefghijklmnopqrstuvwx")[0]
    assert at_source.blob_sidecars(url) == {".manifest": _OTHER}
    assert at_source.parse_blob_url(url)[1] == _CID


@pytest.mark.parametrize(
    "query", ["manifest=notacid", f"manifest={_OTHER}&manifest={_CID}", f"other={_OTHER}"]
)
def test_blob_urls_with_bad_sidecar_parameters_are_refused(query: str) -> None:
    from atdata.errors import SourceError

    with pytest.raises(SourceError, match="blob URL"):
        at_source.parse_blob_url(f"at://did:plc:abcdefghijklmnopqrstuvwx/blob/{_CID}?{query}")
