"""One view of local and remote: ``Index(atmosphere=session)`` answers ``get``,
``list_datasets``, ``load``/``load_dataset`` and ``find_lenses`` from the local repository and
the user's ATProto repository, with names that say where each comes from; ``publish`` promotes.
Against the local PDS harness."""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from numpy.typing import NDArray

from atdata.atmosphere import AtmosphereClient, AtmosphereSession, Resolver
from atdata.dataset_refs import load_dataset
from atdata.errors import InvalidArgumentError
from atdata.index import Index
from atdata.index.entries import DatasetEntry, LensEntry
from atdata.index.remote import RemoteDataset, RemoteLens
from atdata.sample import packable
from atdata.schema import Shape
from atmosphere_helpers import (
    loopback_only,  # noqa: F401 - autouse guard
    new_account_session,
)

pytestmark = pytest.mark.services


@packable
class Pixel:
    image: Annotated[NDArray[np.uint8], Shape(4, 4)]
    label: int


@packable
class Plain:
    image: Annotated[NDArray[np.uint8], Shape(4, 4)]


def strip(p: Any) -> Any:
    return Plain(p.image)


def unstrip(g: Any, p: Any) -> Any:
    return Pixel(g.image, p.label)


def _pixels(n: int) -> list[Any]:
    rng = np.random.default_rng(n)
    return [Pixel(rng.integers(0, 255, (4, 4), dtype=np.uint8), i) for i in range(n)]


@pytest.fixture
def resolver(pds: dict[str, Any]) -> Iterator[Resolver]:
    r = Resolver(plc_url=pds["plc"], handle_resolver_pds=pds["pds"])
    with r.activate():
        yield r
    r.close()


@pytest.fixture
def session(pds: dict[str, Any]) -> AtmosphereSession:
    return new_account_session(pds, prefix="v")  # type: ignore[no-any-return]


def test_local_and_published_datasets_in_one_index(
    tmp_path: Path, session: AtmosphereSession, resolver: Resolver
) -> None:
    home = tmp_path / "home"
    with Index(home=home) as plain:
        plain.write(_pixels(6), "kept-here")
        plain.write(_pixels(9), "shared")
        plain.publish("shared", to=session)  # the promotion path
    with Index(home=home, atmosphere=AtmosphereClient(session, resolver=resolver)) as index:
        assert repr(index).endswith(f"atmosphere=@{session.handle})")
        listed = index.list_datasets()
        where = {(d.repo, d.ref) for d in listed}
        assert where == {
            ("local", "kept-here@1"),
            ("local", "shared@1"),
            ("atmosphere", f"@{session.handle}/shared@1"),
        }
        remote = next(d for d in listed if isinstance(d, RemoteDataset))
        assert remote.uri.startswith(f"at://{session.did}/") and remote.did == session.did

        local = index.get("shared")
        assert isinstance(local, DatasetEntry) and local.uri == "atdata://local/dataset/shared@1"
        assert index.get("@local/shared@1") == local
        got = index.get(f"@{session.handle}/shared")
        assert got == remote
        assert index.get(remote.uri) == remote  # the at:// URI names it too

        want = [int(s.label) for s in _pixels(9)]
        assert [int(s.label) for s in index.load(got)] == want
        assert [int(s.label) for s in index.load(f"@{session.handle}/shared@1", Pixel)] == want
        ds = load_dataset(f"@{session.handle}/shared", index=index, split="train")
        assert [int(s.label) for s in ds] == want
        assert [int(s.label) for s in load_dataset(got, index=index, split="train")] == want
        assert [int(s.label) for s in load_dataset("@local/kept-here", index=index)["train"]] == [
            int(s.label) for s in _pixels(6)
        ]


def test_lenses_are_found_locally_and_in_the_atmosphere(
    tmp_path: Path, session: AtmosphereSession, resolver: Resolver
) -> None:
    with Index(home=tmp_path / "home", atmosphere=session) as index:
        index.add_lens(strip, source=Pixel, target=Plain, putter=unstrip, name="strip")
        commit = "0123456789abcdef0123456789abcdef01234567"
        index.publish_lens("strip", to=session, repository="https://github.com/o/r", commit=commit)
        found = index.find_lenses(Pixel, Plain)
        assert [type(x) for x in found] == [LensEntry, RemoteLens]
        published = found[1]
        assert isinstance(published, RemoteLens)
        assert published.name == "strip" and published.getter.commit == commit
        assert published.uri.startswith(f"at://{session.did}/")
        assert [type(x) for x in index.find_lenses("Pixel", "Plain@1.0.0")] == [
            LensEntry,
            RemoteLens,
        ]
        assert index.find_lenses(Plain, Pixel) == []


@dataclass(frozen=True)
class _Hit:
    uri: str


class _Listed:
    """A discovery source the caller owns: a fixed list of entry URIs (the shape of
    ``atdata.discovery.DiscoveryClient.search_datasets``)."""

    def __init__(self, uris: list[str]) -> None:
        self.uris = uris

    def search_datasets(self, q: str | None = None, *, limit: int = 25) -> list[_Hit]:
        return [_Hit(u) for u in self.uris[:limit]]


class _Overfull(_Listed):
    def search_datasets(self, q: str | None = None, *, limit: int = 25) -> list[_Hit]:
        return [_Hit(u) for u in self.uris]


def test_search_hits_are_read_again_from_the_publishers_pds(
    tmp_path: Path, pds: dict[str, Any], session: AtmosphereSession, resolver: Resolver
) -> None:
    other = new_account_session(pds, prefix="w")
    with Index(home=tmp_path / "theirs") as theirs:
        theirs.write(_pixels(4), "found")
        published = theirs.publish("found", to=other)
    forged = f"at://{other.did}/science.alt.dataset.entry/3zzzzzzzzzzzz"
    hits = _Listed([str(published.uri), forged, "https://not.at/all"])
    with Index(home=tmp_path / "mine", atmosphere=session, discovery=hits) as index:
        (result,) = index.search("found")
        assert result.ref == f"@{other.handle}/found@1" or result.uri == str(published.uri)
        assert result.uri == str(published.uri) and result.did == other.did
        assert [int(s.label) for s in index.load(result)] == list(range(4))
    twice = _Overfull([str(published.uri)] * 3)  # a service sending more than asked for
    with Index(home=tmp_path / "mine", atmosphere=session, discovery=twice) as index:
        assert len(index.search("found", limit=2)) == 2


def test_atmosphere_names_need_an_atmosphere(tmp_path: Path) -> None:
    with Index(home=tmp_path / "home") as index:
        with pytest.raises(InvalidArgumentError, match="Index\\(atmosphere=session\\)"):
            index.get("@someone.test/mnist")
        with pytest.raises(InvalidArgumentError, match="search"):
            index.search("mnist")
        with pytest.raises(InvalidArgumentError, match="discovery= needs atmosphere="):
            Index(home=tmp_path / "other", discovery=_Listed([]))


def test_search_through_a_real_indexer_following_the_pds(
    tmp_path: Path, pds: dict[str, Any], session: AtmosphereSession, resolver: Resolver
) -> None:
    from atdata.discovery import DiscoveryClient
    from discovery_helpers import indexer_process
    from waiting import wait_until

    other = new_account_session(pds, prefix="x")
    word = f"w{os.urandom(4).hex()}"
    db = f"sqlite:///{tmp_path / 'indexer.sqlite'}"
    with indexer_process([pds["pds"]], [pds["plc"]], db) as (_, url):
        with Index(home=tmp_path / "theirs") as theirs:
            theirs.write(_pixels(3), word)
            published = theirs.publish(word, to=other)
        with Index(
            home=tmp_path / "mine", atmosphere=session, discovery=DiscoveryClient(url)
        ) as index:
            wait_until(lambda: len(index.search(word)) == 1, "the indexer to find it", timeout=30)
            (hit,) = index.search(word)
            assert hit.uri == str(published.uri) and hit.did == other.did
            assert [int(s.label) for s in index.load(hit)] == list(range(3))
