"""Publish from an index to a real local PDS, discover, load and verify (publish_dataset and
resolve_dataset, the functions Index.publish and load_dataset are wired to)."""

import hashlib
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata.sources.at
import atdata.sources.http  # noqa: F401 - registers http(s)://
from atdata.atmosphere import (
    AtmosphereClient,
    AtmosphereSession,
    BlobStorage,
    HttpStorage,
    Resolver,
)
from atdata.atmosphere.publish import publish_dataset, publish_lens, resolve_dataset
from atdata.dataset import Dataset
from atdata.errors import AtmosphereError, ConflictError
from atdata.index import Index
from atdata.sample import packable
from atdata.schema import Shape
from atdata.shards.shardset import ShardSet
from atdata.sources import open_source
from atmosphere_helpers import (
    loopback_only,  # noqa: F401 - autouse guard
    new_account_session,
)
from http_server import FileServer

pytestmark = pytest.mark.services


@packable
class Digit:
    """A small image with its label."""

    image: Annotated[NDArray[np.uint8], Shape(8, 8)]
    label: int


@packable
class Gray:
    """Digit without its label."""

    image: Annotated[NDArray[np.uint8], Shape(8, 8)]


def drop_label(d: Any) -> Any:
    return Gray(d.image)


def put_label(g: Any, d: Any) -> Any:
    return Digit(g.image, d.label)


def _digits(n: int, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [Digit(rng.integers(0, 255, (8, 8), dtype=np.uint8), i % 10) for i in range(n)]


@pytest.fixture
def make_session(pds: dict[str, Any]) -> Callable[[], AtmosphereSession]:
    def make() -> AtmosphereSession:
        return new_account_session(pds, prefix="p")  # type: ignore[no-any-return]

    return make


@pytest.fixture
def session(make_session: Callable[[], AtmosphereSession]) -> AtmosphereSession:
    return make_session()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    with Index(home=tmp_path / "home") as ix:
        yield ix


def _load(urls: list[str], sample_type: type) -> list[Any]:
    # a ShardSet: "?pds=" in blob URLs must not be taken for a glob (see .planning/atmosphere.md)
    return list(Dataset(ShardSet(urls), sample_type))


def test_publish_discover_load_verify_loop(
    index: Index,
    session: AtmosphereSession,
    resolver: Resolver,
    make_session: Callable[[], AtmosphereSession],
) -> None:
    samples = _digits(50)
    index.write(samples, "team/digits", maxcount=20, description="random digits", tags=["demo"])

    published = publish_dataset(index, "team/digits", to=session)
    assert published.created
    entry = published.entry.value
    assert isinstance(entry.storage, BlobStorage) and len(entry.storage.blobs) == 3
    assert entry.size is not None and entry.size.samples == 50 and entry.size.shards == 3
    assert published.label is not None and published.label.value.version == "1"

    # someone else finds it by handle and name, and loads typed samples without the class
    reader = AtmosphereClient(make_session(), resolver=resolver)
    resolved = resolve_dataset(f"@{session.handle}/team/digits", client=reader)
    assert resolved.uri == published.uri
    assert resolved.entry.description == "random digits" and resolved.entry.tags == ("demo",)
    loaded = _load(resolved.urls, resolved.sample_type())
    assert [int(s.label) for s in loaded] == [int(s.label) for s in samples]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(loaded, samples, strict=True))
    # every shard matches its published checksum and its CID (checked when fetched)
    for url, checksum in zip(resolved.urls, resolved.checksums, strict=True):
        assert checksum is not None
        assert hashlib.sha256(open_source(url).open().read()).hexdigest() == checksum.digest
    # also by at:// URI of the entry and of the label, and with an explicit version
    assert resolve_dataset(str(published.uri), resolver=resolver).uri == published.uri
    assert published.label is not None
    assert resolve_dataset(str(published.label.uri), resolver=resolver).uri == published.uri
    assert (
        resolve_dataset(f"@{session.handle}/team/digits@1", resolver=resolver).uri == published.uri
    )


def test_publishing_again_sends_nothing_and_reuses_every_record(
    index: Index, session: AtmosphereSession, resolver: Resolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    index.write(_digits(30), "digits", maxcount=10)
    client = AtmosphereClient(session, resolver=resolver)
    first = publish_dataset(index, "digits", to=client)

    def no_upload(*a: Any, **k: Any) -> Any:
        raise AssertionError("re-publishing uploaded a blob")

    monkeypatch.setattr(client, "upload_blob", no_upload)
    again = publish_dataset(index, "digits", to=client)
    assert not again.created
    assert (again.entry.uri, again.schema.uri) == (first.entry.uri, first.schema.uri)
    assert again.label is not None and first.label is not None
    assert again.label.uri == first.label.uri
    did = session.did
    assert len(client.list_entries(did)) == 1
    assert len(client.list_labels(did)) == 1
    assert len(client.list_schemas(did)) == 1


def test_a_new_version_gets_a_new_entry_and_label_and_shares_the_schema(
    index: Index, session: AtmosphereSession, resolver: Resolver
) -> None:
    index.write(_digits(10, seed=1), "digits")
    v1 = publish_dataset(index, "digits", to=session)
    index.write(_digits(12, seed=2), "digits")
    v2 = publish_dataset(index, "digits", to=session)
    assert v2.schema.uri == v1.schema.uri
    assert v2.entry.uri != v1.entry.uri
    latest = resolve_dataset(f"@{session.handle}/digits", resolver=resolver)
    assert latest.uri == v2.entry.uri and latest.entry.size.samples == 12  # type: ignore[union-attr]
    assert resolve_dataset(f"@{session.handle}/digits@1", resolver=resolver).uri == v1.entry.uri


def test_a_label_pointing_elsewhere_is_a_conflict_unless_replaced(
    index: Index, tmp_path: Path, session: AtmosphereSession, resolver: Resolver
) -> None:
    index.write(_digits(10, seed=1), "digits")
    first = publish_dataset(index, "digits", to=session)
    with Index(home=tmp_path / "other") as other:
        other.write(_digits(10, seed=99), "digits")  # also version 1, other samples
        with pytest.raises(ConflictError, match="digits@1"):
            publish_dataset(other, "digits", to=session)
        moved = publish_dataset(other, "digits", to=session, replace_label=True)
    assert moved.label is not None and first.label is not None
    assert moved.label.uri == first.label.uri
    assert resolve_dataset(f"@{session.handle}/digits@1", resolver=resolver).uri == moved.entry.uri


def test_oversized_shards_are_refused_before_sending_or_split_at_samples(
    index: Index, session: AtmosphereSession, resolver: Resolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = _digits(40)
    entry = index.write(samples, "big", maxcount=40)  # one shard of ~40 KiB
    assert entry.shards[0].size > 20_000
    client = AtmosphereClient(session, resolver=resolver)
    monkeypatch.setattr(session, "_blob_limit", 12_000)  # a PDS with a small blob limit
    real_upload = client.upload_blob
    uploads: list[int] = []

    def counting(data: bytes, **kw: Any) -> Any:
        uploads.append(len(data))
        return real_upload(data, **kw)

    monkeypatch.setattr(client, "upload_blob", counting)
    with pytest.raises(AtmosphereError, match="split=True"):
        publish_dataset(index, "big", to=client)
    assert uploads == []
    assert client.list_entries(session.did) == []

    published = publish_dataset(index, "big", to=client, split=True)
    assert len(uploads) >= 3 and max(uploads) <= 12_000
    resolved = resolve_dataset(str(published.uri), resolver=resolver)
    loaded = _load(resolved.urls, resolved.sample_type())
    assert [int(s.label) for s in loaded] == [int(s.label) for s in samples]


def test_shards_at_http_urls_are_published_as_urls_not_uploaded(
    index: Index,
    session: AtmosphereSession,
    resolver: Resolver,
    http_server: FileServer,
    tmp_path: Path,
) -> None:
    from atdata import write_samples

    samples = _digits(15)
    infos = write_samples(samples, str(http_server.root / "web-%06d.tar"), maxcount=10).shard_infos
    urls = [http_server.url_for(Path(i.url).name) for i in infos]
    index.insert(urls, "web", sample_type=Digit)
    published = publish_dataset(index, "web", to=session)
    storage = published.entry.value.storage
    assert isinstance(storage, HttpStorage)
    assert [s.url for s in storage.shards] == urls
    assert [s.checksum.digest for s in storage.shards] == [i.checksum.digest for i in infos]
    resolved = resolve_dataset(f"@{session.handle}/web", resolver=resolver)
    assert resolved.urls == urls
    assert [int(s.label) for s in _load(resolved.urls, resolved.sample_type())] == [
        int(s.label) for s in samples
    ]
    with pytest.raises(AtmosphereError, match="storage='urls'"):
        index.write(_digits(3), "local")
        publish_dataset(index, "local", to=session, storage="urls")


def test_lenses_are_published_as_code_references(
    index: Index, session: AtmosphereSession, resolver: Resolver
) -> None:
    index.add_lens(drop_label, source=Digit, target=Gray, putter=put_label, name="drop_label")
    commit = "0123456789abcdef0123456789abcdef01234567"
    stored = publish_lens(
        index, "drop_label", to=session, repository="https://github.com/org/digits", commit=commit
    )
    lens = stored.value
    assert lens.getter.path == "test_atmosphere_publish.py:drop_label"
    assert lens.putter.path == "test_atmosphere_publish.py:put_label"
    assert lens.getter.commit == commit
    client = AtmosphereClient(resolver=resolver)
    assert client.get_lens(stored.uri).value == lens
    source = client.get_schema(lens.source_schema).value.to_schema()
    assert [f.name for f in source.fields] == ["image", "label"]
    again = publish_lens(
        index, "drop_label", to=session, repository="https://github.com/org/digits", commit=commit
    )
    assert again.uri == stored.uri


def test_load_dataset_loads_a_published_dataset_by_handle_and_by_uri(
    index: Index,
    session: AtmosphereSession,
    resolver: Resolver,
    make_session: Callable[[], AtmosphereSession],
) -> None:
    from atdata.dataset_refs import load_dataset

    samples = _digits(25)
    index.write(samples, "digits", maxcount=10)
    published = publish_dataset(index, "digits", to=session)
    with resolver.activate():
        by_name = load_dataset(f"@{session.handle}/digits", split="train")
        by_uri = load_dataset(str(published.uri), Digit, split="train")
        loaded = list(by_name)
        typed = list(by_uri)
    assert [int(s.label) for s in loaded] == [int(s.label) for s in samples]
    assert all(isinstance(s, Digit) for s in typed)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(typed, samples, strict=True))


def test_an_http_shard_that_differs_from_its_record_is_refused_on_load(
    index: Index, session: AtmosphereSession, resolver: Resolver, http_server: FileServer
) -> None:
    from atdata import write_samples
    from atdata.atmosphere.open_dataset import load_reference
    from atdata.errors import IntegrityError

    (info,) = write_samples(_digits(5), str(http_server.root / "t-%06d.tar")).shard_infos
    url = http_server.url_for(Path(info.url).name)
    index.insert([url], "tampered", sample_type=Digit)
    publish_dataset(index, "tampered", to=session)
    path = Path(info.url)
    data = bytearray(path.read_bytes())
    data[600] ^= 0xFF  # inside the first member's body
    path.write_bytes(bytes(data))
    ds = load_reference(f"@{session.handle}/tampered", resolver=resolver, cache=False)
    with pytest.raises(IntegrityError):
        list(ds)
    with pytest.raises(IntegrityError):  # a pickled copy (e.g. in a worker) still checks
        list(pickle.loads(pickle.dumps(ds)))


def test_index_publish_and_publish_lens_through_the_index_api(
    index: Index,
    session: AtmosphereSession,
    resolver: Resolver,
    make_session: Callable[[], AtmosphereSession],
) -> None:
    samples = _digits(30)
    index.write(samples, "team/digits", maxcount=10, description="digits")
    published = index.publish("team/digits", to=session)
    assert published.created
    assert isinstance(published.entry.value.storage, BlobStorage)
    assert published.label is not None and published.label.value.version == "1"
    again = index.publish("team/digits@1", to=session, storage="blobs")
    assert not again.created and again.uri == published.uri
    with pytest.raises(AtmosphereError, match="storage='urls'"):
        index.publish("team/digits", to=session, storage="urls")

    reader = AtmosphereClient(make_session(), resolver=resolver)
    resolved = resolve_dataset(f"@{session.handle}/team/digits@1", client=reader)
    assert resolved.uri == published.uri
    loaded = _load(resolved.urls, resolved.sample_type())
    assert [int(s.label) for s in loaded] == [int(s.label) for s in samples]

    index.add_lens(drop_label, source=Digit, target=Gray, putter=put_label, name="drop_label")
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    lens = index.publish_lens(
        "drop_label", to=session, repository="https://github.com/org/digits", commit=commit
    )
    assert reader.get_lens(lens.uri).value == lens.value
    assert lens.value.getter.path == "test_atmosphere_publish.py:drop_label"
    assert lens.value.source_schema == str(published.schema.uri)
