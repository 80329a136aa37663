"""The discovery indexer against two real local PDSes: three accounts publish datasets, schemas,
lenses and labels; an ``atdata indexer`` subprocess follows both; searches from other processes
find everything, load a dataset by its result, and see updates and deletes."""

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
import atdata.sources.at
from atdata.atmosphere import (
    AtmosphereClient,
    CodeReference,
    DatasetRecord,
    LensRecord,
    Resolver,
)
from atdata.atmosphere.publish import publish_dataset
from atdata.discovery import DiscoveryClient
from atdata.discovery.store import IndexStore
from atdata.index import Index
from atdata.sample import packable
from atdata.schema import Shape
from atmosphere_helpers import loopback_only, new_account_session  # noqa: F401 - autouse guard
from discovery_helpers import indexer_process
from services import launch_pds
from waiting import wait_until

pytestmark = pytest.mark.services


@packable
class Reading:
    """A sensor reading."""

    values: Annotated[NDArray[np.float32], Shape(4)]
    station: int


@pytest.fixture(scope="module")
def second_pds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with launch_pds(tmp_path_factory.mktemp("pds2")) as info:
        yield info


def _search_cli(url: str, *args: str, dids: set[str] | None = None) -> list[dict[str, Any]]:
    """``atdata search --json`` in another process (results of ``dids`` only, when given: the
    session's PDS also holds other tests' datasets)."""
    out = subprocess.run(
        [sys.executable, "-m", "atdata.cli", "search", *args, "--indexer", url, "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    results = list(json.loads(out.stdout)["results"])
    return [r for r in results if dids is None or r["did"] in dids]


def _publish(session: Any, resolver: Resolver, home: Path, name: str, tags: list[str]) -> Any:
    rng = np.random.default_rng(len(name))
    samples = [Reading(rng.random(4, dtype=np.float32), i) for i in range(6)]
    with Index(home=home) as index:
        index.write(samples, name, maxcount=3, description=f"{name} readings", tags=tags)
        return publish_dataset(index, name, to=AtmosphereClient(session, resolver=resolver))


def test_an_indexer_following_two_pdses_finds_every_dataset_and_tracks_changes(
    pds: dict[str, Any], second_pds: dict[str, Any], tmp_path: Path
) -> None:
    hosts = [pds, second_pds]
    resolvers = [Resolver(plc_url=h["plc"], handle_resolver_pds=h["pds"]) for h in hosts]
    alice = new_account_session(pds, prefix="alice")
    bob = new_account_session(pds, prefix="bob")
    carol = new_account_session(second_pds, prefix="carol")
    published = {
        "alice": _publish(alice, resolvers[0], tmp_path / "a", "weather", ["sensors"]),
        "bob": _publish(bob, resolvers[0], tmp_path / "b", "traffic", ["sensors", "city"]),
    }
    db = f"sqlite:///{tmp_path / 'index.sqlite'}"
    with indexer_process([h["pds"] for h in hosts], [h["plc"] for h in hosts], db) as (proc, url):
        # published after the indexer started: arrives through the live stream
        published["carol"] = _publish(carol, resolvers[1], tmp_path / "c", "rainfall", ["sensors"])
        carol_client = AtmosphereClient(carol, resolver=resolvers[1])
        schema_uri = str(published["carol"].entry.value.schema_ref)
        code = CodeReference("https://github.com/example/lenses", "0123456789abcdef", "lens.py")
        lens = carol_client.publish(
            LensRecord("identity", schema_uri, schema_uri, code, code, description="same")
        )

        dids = {alice.did, bob.did, carol.did}

        def found() -> set[str]:
            return {r["uri"] for r in _search_cli(url, "--tag", "sensors", dids=dids)}

        want = {str(p.uri) for p in published.values()}
        wait_until(lambda: found() == want, "every dataset searchable", timeout=30)
        # by text, by schema (URI and name), by repo, by license-less filters
        by_text = _search_cli(url, "rainfall", dids=dids)
        assert [r["uri"] for r in by_text] == [str(published["carol"].uri)]
        assert by_text[0]["name"] == "rainfall" and by_text[0]["did"] == carol.did
        carol_uri = str(published["carol"].uri)
        assert {r["uri"] for r in _search_cli(url, "--schema", schema_uri)} == {carol_uri}
        schema_name = carol_client.get_schema(schema_uri).value.name
        assert {
            r["uri"] for r in _search_cli(url, "--schema", schema_name, dids=dids)
        } == want  # all three
        assert {r["uri"] for r in _search_cli(url, "--tag", "city")} == {str(published["bob"].uri)}
        assert _search_cli(url, "nothing-like-this") == []
        client = DiscoveryClient(url)
        lenses = client.search_lenses(source_schema=schema_uri, target_schema=schema_uri)
        assert [lens_.uri for lens_ in lenses] == [str(lens.uri)]
        # pages: one result each, following the cursor, gives all three
        seen, cursor = [], None
        while True:
            page = client.search_datasets(tags=["sensors"], limit=1, cursor=cursor)
            seen += [r.uri for r in page if r.did in dids]
            cursor = page.cursor
            if cursor is None:
                break
        assert sorted(seen) == sorted(want)
        # a result loads as it is
        (result,) = client.search_datasets("weather", repo=alice.did)
        with resolvers[0].activate():
            ds = atdata.load_dataset(result, Reading, split="train")
            assert sorted(int(s.station) for s in ds) == list(range(6))
        # an update and a delete on a PDS reach the index
        entry_uri = published["carol"].uri
        updated = DatasetRecord(
            **{**vars(published["carol"].entry.value), "description": "monsoon rainfall"}
        )
        carol_client.put_record(entry_uri.collection, entry_uri.rkey, updated.to_record())
        wait_until(
            lambda: [r.uri for r in client.search_datasets("monsoon")] == [str(entry_uri)],
            "the update indexed",
            timeout=30,
        )
        AtmosphereClient(bob, resolver=resolvers[0]).delete_record(published["bob"].uri)
        wait_until(
            lambda: client.search_datasets("traffic") == [], "the delete indexed", timeout=30
        )
        stats = client.stats()
        assert stats["counters"].get("records.deleted", 0) >= 1
        # (rejections are not asserted here: the session's PDS also holds other tests' hostile
        # records; tests/test_discovery_hostile.py counts them exactly)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    store = IndexStore(db)
    try:
        assert set(store.cursors()) == {h["pds"] for h in hosts}
    finally:
        store.close()
    for r in resolvers:
        r.close()


def test_a_backfill_through_a_host_without_repositories_reads_the_accounts_pds(
    pds: dict[str, Any],
) -> None:
    """Following a relay that serves no ``getRepo``: the repository comes from the PDS its DID
    document names, and is checked all the same."""
    from atdata.atmosphere import LabelRecord
    from atdata.discovery.firehose import Follower
    from atdata.discovery.ingest import Ingestor
    from atdata.discovery.verify import KeyResolver

    session = new_account_session(pds, prefix="relay")
    resolver = Resolver(plc_url=pds["plc"], handle_resolver_pds=pds["pds"])
    entry = f"at://{session.did}/science.alt.dataset.entry/3n2ukhgqvrc2u"
    label = AtmosphereClient(session, resolver=resolver).publish(LabelRecord("x", entry))
    keys = KeyResolver([pds["plc"]])
    try:
        mutation = Follower("http://127.0.0.1:9", None, Ingestor(keys)).backfill(session.did)  # type: ignore[arg-type]
    finally:
        keys.close()
        resolver.close()
    assert [r.uri for r in mutation.upserts] == [str(label.uri)]
    assert mutation.replace_repos == [session.did]
