"""The indexer killed with SIGKILL while events stream in, then restarted on the same database,
ends with the same records as an indexer that was never interrupted, and has applied every event
exactly once (its count of applied events equals its cursor: PDS sequence numbers run 1..N)."""

import threading
from pathlib import Path
from typing import Any

import pytest

from atdata.atmosphere import AtmosphereClient, LabelRecord, Resolver
from atdata.discovery import DiscoveryClient
from atdata.discovery.store import IndexStore
from atmosphere_helpers import loopback_only, new_account_session  # noqa: F401 - autouse guard
from discovery_helpers import indexer_process
from services import launch_pds
from waiting import wait_until

pytestmark = pytest.mark.services
RECORDS = 40


def test_sigkill_mid_stream_then_restart_loses_and_repeats_nothing(tmp_path: Path) -> None:
    (tmp_path / "pds").mkdir()
    with launch_pds(tmp_path / "pds") as pds:
        resolver = Resolver(plc_url=pds["plc"], handle_resolver_pds=pds["pds"])
        session = new_account_session(pds, prefix="k")
        client = AtmosphereClient(session, resolver=resolver)
        entry = f"at://{session.did}/science.alt.dataset.entry/3n2ukhgqvrc2u"
        made: list[str] = []
        go = threading.Event()

        def publish() -> None:
            go.wait(60)
            for i in range(RECORDS):
                made.append(str(client.publish(LabelRecord(f"l{i}", entry, str(i))).uri))

        writer = threading.Thread(target=publish)
        writer.start()
        hosts, plcs = [pds["pds"]], [pds["plc"]]
        db = f"sqlite:///{tmp_path / 'killed.sqlite'}"
        try:
            with indexer_process(hosts, plcs, db) as (proc, url):
                go.set()
                stats = DiscoveryClient(url).stats
                wait_until(lambda: stats()["records"] >= 5, "some records indexed", timeout=60)
                proc.kill()  # SIGKILL, while the writer is still publishing
                proc.wait()
            assert len(made) < RECORDS, "the writer finished before the kill: not mid-stream"
        finally:
            writer.join()
        reference_db = f"sqlite:///{tmp_path / 'reference.sqlite'}"

        def caught_up(url: str) -> bool:
            return DiscoveryClient(url).stats()["records"] == RECORDS

        with indexer_process(hosts, plcs, db) as (_, url):
            wait_until(lambda: caught_up(url), "the restarted indexer caught up", timeout=60)
        with indexer_process(hosts, plcs, reference_db) as (_, url):
            wait_until(lambda: caught_up(url), "the reference indexer caught up", timeout=60)
        stores = [IndexStore(db), IndexStore(reference_db)]
        try:
            killed, reference = stores
            assert killed.snapshot() == reference.snapshot()
            assert {uri for uri, _ in killed.snapshot()} == set(made)
            for store in stores:
                counters: dict[str, Any] = store.counters()
                assert counters["events.applied"] == store.cursor(pds["pds"])
                assert not any(k.startswith("rejected.") for k in counters)
        finally:
            for store in stores:
                store.close()
            resolver.close()
