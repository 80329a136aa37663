"""An index on PostgreSQL and one on SQLite, fed the same signed commits through the same
follower, give the same answers to every query (tables under a prefix unique to the test,
dropped after)."""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from atdata.atmosphere import Checksum, DatasetRecord, HttpShard, HttpStorage
from atdata.discovery.firehose import Follower
from atdata.discovery.ingest import Ingestor
from atdata.discovery.server import answer
from atdata.discovery.store import IndexStore, Mutation
from atdata.discovery.verify import KeyResolver
from atmosphere_helpers import loopback_only  # noqa: F401 - autouse guard
from discovery_helpers import Signer, frame, serve_doc
from services import postgres_dsn  # noqa: F401 - fixture

pytestmark = pytest.mark.services
HOST = "http://127.0.0.1:9"
CODE = {
    "repository": "https://github.com/example/lenses",
    "commit": "0123456789abcdef",
    "path": "lens.py",
}


@pytest.fixture
def stores(tmp_path: Path, postgres_dsn: str) -> Iterator[list[IndexStore]]:  # noqa: F811
    pytest.importorskip("psycopg")
    prefix = f"t{os.urandom(4).hex()}_"
    made = [
        IndexStore(f"sqlite:///{tmp_path / 'i.sqlite'}"),
        IndexStore(postgres_dsn, prefix=prefix),
    ]
    try:
        yield made
    finally:
        made[1].drop()
        for store in made:
            store.close()


def _records(did: str) -> dict[str, dict[str, Any]]:
    schema = f"at://{did}/science.alt.dataset.schema/s1"
    out: dict[str, dict[str, Any]] = {}
    for i in range(12):
        storage = HttpStorage(
            (HttpShard(f"https://data.example.com/{i}.tar", Checksum.sha256("ab" * 32)),)
        )
        record = DatasetRecord(
            f"set-{i}",
            schema if i % 2 else f"at://{did}/science.alt.dataset.schema/s2",
            storage,
            description=f"{'mnist digits' if i % 3 == 0 else 'weather'} number {i}",
            tags=("vision",) if i % 3 == 0 else ("climate", "sensors"),
            license="cc-by-4.0" if i % 4 else "mit",
        )
        value = record.to_record()
        value["size"] = {"bytes": 1000 * i, "samples": i}
        out[f"science.alt.dataset.entry/e{i:02d}"] = value
    out["science.alt.dataset.lens/l1"] = {
        "$type": "science.alt.dataset.lens",
        "name": "to-s2",
        "sourceSchema": schema,
        "targetSchema": f"at://{did}/science.alt.dataset.schema/s2",
        "getterCode": CODE,
        "putterCode": CODE,
        "createdAt": "2026-01-01T00:00:00.000Z",
    }
    return out


def test_postgres_and_sqlite_answer_alike(stores: list[IndexStore]) -> None:
    signer = Signer("did:web:pending")
    with serve_doc([signer]) as host:
        signer.did = f"did:web:{host}"
        keys = KeyResolver(["http://localhost:9"])
        try:
            body = signer.commit_body(_records(signer.did), seq=1)
            for store in stores:
                store.apply(Mutation(repo_revs={signer.did: "0"}))
                Follower(HOST, store, Ingestor(keys)).handle(frame(body))
        finally:
            keys.close()
    s1 = quote(f"at://{signer.did}/science.alt.dataset.schema/s1", safe="")
    did = quote(signer.did, safe="")
    queries = [
        "q=mnist",
        "q=WEATHER+number",
        "tags=climate&tags=sensors",
        "tags=vision&license=mit",
        f"schemaRef={s1}",
        "minBytes=3000&maxBytes=9000",
        f"repo={did}&limit=5",
        "limit=4&cursor=" + quote(f"at://{signer.did}/science.alt.dataset.entry/e03", safe=""),
        "q=nothing",
    ]
    sqlite, postgres = stores
    assert sqlite.count() == postgres.count() == 13
    for query in queries:
        a = answer(sqlite, "science.alt.dataset.searchDatasets", query)
        b = answer(postgres, "science.alt.dataset.searchDatasets", query)
        assert a == b, query
    assert [
        e["name"]
        for e in answer(sqlite, "science.alt.dataset.searchDatasets", "q=mnist")["entries"]
    ] == ["set-0", "set-3", "set-6", "set-9"]
    lens_query = f"sourceSchema={s1}&targetSchema=s2"  # URI, or a schema's name/CID
    lenses = [answer(s, "science.alt.dataset.searchLenses", lens_query) for s in stores]
    assert lenses[0] == lenses[1]
    assert (
        answer(sqlite, "science.alt.dataset.searchLenses", f"sourceSchema={s1}")["lenses"][0][
            "name"
        ]
        == "to-s2"
    )
    assert sqlite.counters() == postgres.counters()
