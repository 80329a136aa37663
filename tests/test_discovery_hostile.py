"""Hostile input to the indexer: commits made and signed here (a did:web account whose DID
document a loopback server serves) fed as firehose frames into the real follower, store and
checks. Each bad record or commit is dropped and counted; the good one next to them is indexed;
nothing is ever run."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libipld
import pytest

from atdata.atmosphere import Checksum, DatasetRecord, HttpShard, HttpStorage
from atdata.discovery.car import read_car
from atdata.discovery.firehose import Follower
from atdata.discovery.ingest import Ingestor
from atdata.discovery.store import IndexStore, Mutation
from atdata.discovery.verify import KeyResolver
from atmosphere_helpers import loopback_only  # noqa: F401 - autouse guard
from discovery_helpers import Signer, block_cid, car_bytes, frame, serve_doc

ENTRY = "science.alt.dataset.entry"
HOST = "http://127.0.0.1:9"  # never contacted: every repository is known, so no backfill


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Signer, Follower, IndexStore]]:
    signer = Signer("did:web:pending")
    with serve_doc([signer]) as host:
        signer.did = f"did:web:{host}"
        store = IndexStore(f"sqlite:///{tmp_path / 'i.sqlite'}")
        keys = KeyResolver(["http://localhost:9"])  # did:web only: the PLC is never asked
        store.apply(Mutation(repo_revs={signer.did: "0"}))
        try:
            yield signer, Follower(HOST, store, Ingestor(keys)), store
        finally:
            keys.close()
            store.close()


def _entry(did: str, name: str, **extra: Any) -> dict[str, Any]:
    storage = HttpStorage(
        (HttpShard("https://data.example.com/a.tar", Checksum.sha256("ab" * 32)),)
    )
    record = DatasetRecord(name, f"at://{did}/science.alt.dataset.schema/s1", storage)
    return {**record.to_record(), **extra}


def test_hostile_records_and_commits_are_dropped_and_counted(
    setup: tuple[Signer, Follower, IndexStore],
) -> None:
    signer, follower, store = setup
    did = signer.did
    good = f"{ENTRY}/good"
    seq = iter(range(1, 100))
    # one commit: a good record beside a wrong-shaped one, a huge one and a foreign $type
    follower.handle(
        frame(
            signer.commit_body(
                {
                    good: _entry(did, "good"),
                    f"{ENTRY}/shape": {**_entry(did, "shape"), "name": 5, "tags": "x"},
                    f"{ENTRY}/huge": _entry(did, "huge", description="x" * (1 << 20)),
                    f"{ENTRY}/type": {**_entry(did, "type"), "$type": "app.bsky.feed.post"},
                    f"{ENTRY}/code": {**_entry(did, "code"), "storage": {"$type": "exec"}},
                },
                seq=next(seq),
            )
        )
    )
    # a block whose bytes are not what its CID commits to: the whole commit goes
    tampered = _entry(did, "tampered")
    body = signer.commit_body(
        {f"{ENTRY}/tampered": tampered},
        seq=next(seq),
        raw_blocks={f"{ENTRY}/tampered": b"\xa1aa\x01"},
    )
    follower.handle(frame(body))
    # signed by another key
    follower.handle(
        frame(
            signer.commit_body(
                {f"{ENTRY}/forged": _entry(did, "forged")}, seq=next(seq), signer=Signer(did)
            )
        )
    )
    # a commit of another repository presented as this one's
    other = signer.commit_body({f"{ENTRY}/other": _entry(did, "other")}, seq=next(seq))
    other["repo"] = "did:web:localhost%3A1"
    store.apply(Mutation(repo_revs={other["repo"]: "0"}))  # known: no backfill is tried
    follower.handle(frame(other))
    # an op naming a record the commit's tree does not hold
    body = signer.commit_body({f"{ENTRY}/ghost": _entry(did, "ghost")}, seq=next(seq))
    body["ops"][0]["path"] = f"{ENTRY}/elsewhere"
    follower.handle(frame(body))
    # frames that are not DAG-CBOR at all
    follower.handle(b"\xff\x00garbage")

    assert store.snapshot() == [(f"at://{did}/{good}", store.snapshot()[0][1])]
    counters = store.counters()
    rejected = {k: v for k, v in counters.items() if k.startswith("rejected.")}
    assert rejected == {
        "rejected.invalid_record": 3,  # wrong shapes, foreign $type, unknown storage
        "rejected.too_large": 1,
        "rejected.bad_car": 1,
        "rejected.bad_signature": 1,
        "rejected.wrong_repo": 1,
        "rejected.not_in_commit": 1,
        "rejected.bad_frame": 1,
    }
    assert counters["records.indexed"] == 1
    assert store.cursor(HOST) == 5  # every event's seq was consumed, the garbage frame had none
    # replaying the same events changes nothing
    follower.handle(frame(signer.commit_body({f"{ENTRY}/late": _entry(did, "late")}, seq=3)))
    assert len(store.snapshot()) == 1


def test_p256_keys_verify_and_a_high_s_signature_is_refused(tmp_path: Path) -> None:
    signer = Signer("did:web:pending", p256=True)
    with serve_doc([signer]) as host:
        signer.did = f"did:web:{host}"
        store = IndexStore(f"sqlite:///{tmp_path / 'i.sqlite'}")
        keys = KeyResolver(["http://localhost:9"])
        try:
            store.apply(Mutation(repo_revs={signer.did: "0"}))
            follower = Follower(HOST, store, Ingestor(keys))
            follower.handle(
                frame(signer.commit_body({f"{ENTRY}/p": _entry(signer.did, "p")}, seq=1))
            )
            assert len(store.snapshot()) == 1
            # the same signature with s replaced by n - s verifies mathematically, but ATProto
            # requires low-S: refused (no second valid encoding of one signature)
            body = signer.commit_body({f"{ENTRY}/q": _entry(signer.did, "q")}, seq=2)
            car = body["blocks"]
            blocks = read_car(car).blocks
            commit = libipld.decode_dag_cbor(blocks[body["commit"]])
            n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
            s = int.from_bytes(commit["sig"][32:], "big")
            high = commit["sig"][:32] + (n - s).to_bytes(32, "big")
            forged = libipld.encode_dag_cbor({**commit, "sig": high})
            blocks.pop(body["commit"])
            blocks[block_cid(forged)] = forged
            body["commit"] = block_cid(forged)
            body["blocks"] = car_bytes(block_cid(forged), blocks)
            follower.handle(frame(body))
            assert len(store.snapshot()) == 1
            assert store.counters()["rejected.bad_signature"] == 1
        finally:
            keys.close()
            store.close()
