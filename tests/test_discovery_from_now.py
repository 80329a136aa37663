"""``atdata indexer --from-now`` against a real local PDS: with no stored cursor it starts at the
stream's live head, so records published before it started are not replayed (a repository
named with ``--backfill`` is read whole; one that commits later is read whole on its first
commit, as the index never holds part of a repository); after the first event the stored
cursor decides, so a restart picks up what was published while it was down, applying every
event once."""

from pathlib import Path
from typing import Any

import pytest

from atdata.atmosphere import AtmosphereClient, LabelRecord, Resolver
from atdata.discovery.store import IndexStore
from atmosphere_helpers import loopback_only, new_account_session  # noqa: F401 - autouse guard
from discovery_helpers import indexer_process
from waiting import wait_until

pytestmark = pytest.mark.services


def test_from_now_skips_history_then_resumes_from_the_stored_cursor(
    pds: dict[str, Any], tmp_path: Path
) -> None:
    resolver = Resolver(plc_url=pds["plc"], handle_resolver_pds=pds["pds"])
    clients = {
        role: AtmosphereClient(new_account_session(pds, prefix=role[0]), resolver=resolver)
        for role in ("quiet", "later", "asked")
    }

    def label(role: str, name: str) -> str:
        client = clients[role]
        entry = f"at://{client.session.did}/science.alt.dataset.entry/3n2ukhgqvrc2u"
        return str(client.publish(LabelRecord(name, entry, "1")).uri)

    before = {role: label(role, f"{role}-before") for role in clients}
    db = f"sqlite:///{tmp_path / 'index.sqlite'}"
    store = IndexStore(db)  # read beside the indexer process (SQLite in WAL mode)
    hosts, plcs = [pds["pds"]], [pds["plc"]]

    def indexed() -> set[str]:
        return {uri for uri, _ in store.snapshot()}

    asked_did = clients["asked"].session.did
    try:
        with indexer_process(hosts, plcs, db, "--from-now", "--backfill", asked_did):
            # The backfill runs once the stream is open, so what is published next is live.
            wait_until(lambda: before["asked"] in indexed(), "the requested backfill")
            assert store.cursor(pds["pds"]) is None, "no event yet, so no cursor"
            later = label("later", "later-after")
            clients["fresh"] = AtmosphereClient(
                new_account_session(pds, prefix="f"), resolver=resolver
            )
            fresh = label("fresh", "fresh-after")
            wait_until(lambda: {later, fresh} <= indexed(), "records published after start")
            # The later repository's first commit after the start reads it whole.
            assert before["later"] in indexed()
            assert before["quiet"] not in indexed(), "history was replayed despite --from-now"
            first_cursor = store.cursor(pds["pds"])
            assert first_cursor is not None and first_cursor > 0
        first_applied = store.counters()["events.applied"]
        stopped_cursor = store.cursor(pds["pds"])
        assert stopped_cursor is not None
        # Published while no indexer runs: a restart (still --from-now) must not skip it.
        while_down = label("fresh", "fresh-while-down")
        with indexer_process(hosts, plcs, db, "--from-now"):
            wait_until(lambda: while_down in indexed(), "the record published while down")
            after = label("fresh", "fresh-after-restart")
            wait_until(lambda: after in indexed(), "a record published after the restart")
        assert before["quiet"] not in indexed()
        counters = store.counters()
        cursor = store.cursor(pds["pds"])
        assert cursor is not None
        # PDS sequence numbers are contiguous: every event after the stored cursor was applied
        # once by the restarted indexer, none skipped and none twice.
        assert counters["events.applied"] - first_applied == cursor - stopped_cursor
        assert counters["repos.backfill_requested"] == 1
        assert not any(k.startswith("rejected.") for k in counters)
    finally:
        store.close()
        resolver.close()
