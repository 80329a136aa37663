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
from atdata.discovery.store import BadCursor, IndexStore, Mutation
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
    assert sorted(  # in the order of their createdAt (see the ranking test)
        e["name"]
        for e in answer(sqlite, "science.alt.dataset.searchDatasets", "q=mnist")["entries"]
    ) == ["set-0", "set-3", "set-6", "set-9"]
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


RANKED = {  # rkey: (name, description, createdAt)
    "r0": ("weather", "hourly readings", "2026-01-01T00:00:00.000Z"),
    "r1": ("Weather!", "the same words, newer", "2026-03-01T00:00:00.000Z"),
    "r2": ("weather-daily", "by day", "2026-02-01T00:00:00.000Z"),
    "r3": ("daily weather", "by day, newer", "2026-05-01T00:00:00.000Z"),
    "r4": ("weathered rocks", "weather on stone", "2026-01-15T00:00:00.000Z"),
    "r5": ("rainfall", "weather of the week", "2026-06-01T00:00:00.000Z"),
    "r6": ("snow", "weather, again", "2026-06-01T00:00:00.000Z"),
    "r7": ("unrelated", "nothing here", "2026-07-01T00:00:00.000Z"),
}


def _ranked_records(did: str) -> dict[str, dict[str, Any]]:
    storage = HttpStorage(
        (HttpShard("https://data.example.com/0.tar", Checksum.sha256("ab" * 32)),)
    )
    out: dict[str, dict[str, Any]] = {}
    for rkey, (name, description, created) in RANKED.items():
        schema = f"at://{did}/science.alt.dataset.schema/s1"
        value = DatasetRecord(name, schema, storage, description=description).to_record()
        value["createdAt"] = created
        out[f"science.alt.dataset.entry/{rkey}"] = value
    return out


def _feed(stores: list[IndexStore], records: dict[str, dict[str, Any]], signer: Signer) -> None:
    keys = KeyResolver(["http://localhost:9"])
    try:
        body = signer.commit_body(records, seq=1)
        for store in stores:
            store.apply(Mutation(repo_revs={signer.did: "0"}))
            Follower(HOST, store, Ingestor(keys)).handle(frame(body))
    finally:
        keys.close()


def _pages(store: IndexStore, query: str) -> list[list[str]]:
    """The rkeys of every page of ``query``, following the cursors."""
    pages: list[list[str]] = []
    cursor = ""
    while True:
        more = f"&cursor={quote(cursor, safe='')}" if cursor else ""
        got = answer(store, "science.alt.dataset.searchDatasets", query + more)
        pages.append([e["uri"].rsplit("/", 1)[1] for e in got["entries"]])
        cursor = got.get("cursor", "")
        if not cursor:
            return pages


def test_text_search_ranks_alike_on_postgres_and_sqlite(stores: list[IndexStore]) -> None:
    """Exact name, then name prefix or every word in the name, then description matches; the
    newest first within a rank, then by URI; pages follow the same order on both."""
    signer = Signer("did:web:pending")
    with serve_doc([signer]) as host:
        signer.did = f"did:web:{host}"
        _feed(stores, _ranked_records(signer.did), signer)
    expected = {
        "q=weather": ["r1", "r0", "r3", "r2", "r4", "r5", "r6"],
        "q=WEATHER": ["r1", "r0", "r3", "r2", "r4", "r5", "r6"],
        "q=daily+weather": ["r3", "r2"],
        "q=weather+daily": ["r2", "r3"],
        "q=weather+of+the+week": ["r5"],
        "q=rocks": ["r4"],
    }
    for query, order in expected.items():
        for store in stores:
            assert _pages(store, query + "&limit=100") == [order], (store.url[:10], query)
            pages = _pages(store, query + "&limit=2")
            assert [k for page in pages for k in page] == order, (store.url[:10], query)
            assert all(len(page) == 2 for page in pages[:-1])
        sqlite, postgres = (
            answer(s, "science.alt.dataset.searchDatasets", query + "&limit=3") for s in stores
        )
        assert sqlite == postgres, query
    for store in stores:
        for bad in ("garbage", "WzMsIiIsIiJd", quote("at://x/y/z", safe="")):
            with pytest.raises(BadCursor):
                answer(store, "science.alt.dataset.searchDatasets", f"q=weather&cursor={bad}")


def test_an_index_from_before_ranking_gets_its_name_terms_on_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    signer = Signer("did:web:pending")
    store = IndexStore(url)
    try:
        with serve_doc([signer]) as host:
            signer.did = f"did:web:{host}"
            _feed([store], _ranked_records(signer.did), signer)
        with store._tx() as cur:  # the terms an index written before ranking holds
            cur.execute("DELETE FROM idx_terms WHERE kind IN ('n', 'x')")
        assert _pages(store, "q=weather") == [["r5", "r6", "r3", "r1", "r2", "r4", "r0"]]
    finally:
        store.close()
    reopened = IndexStore(url)
    try:
        assert _pages(reopened, "q=weather") == [["r1", "r0", "r3", "r2", "r4", "r5", "r6"]]
    finally:
        reopened.close()
