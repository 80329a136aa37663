"""The discovery indexer of issue 16: ingest rate, search latency at 10k and 100k datasets, and
time from publish to searchable.

    uv run python -m benchmarks.indexer_bench [--sizes 10000,100000] [--queries 300]

1. **Ingest** (SQLite, in-process): signed synthetic commits of 100 dataset entries each (a
   did:web account whose DID document a loopback server serves, as in the hostile-input test) go
   through the real follower path: frame decoding, CAR and CID checks, signature, MST lookup,
   lexicon checks, one transaction per event. Reported as events/s and records/s.
2. **Search**: at each size, ``searchDatasets`` over HTTP (the XRPC server, DiscoveryClient) for a
   mix of queries (a word, a tag, a schema, a license plus a size range, a word plus a tag);
   p50/p99 of ``--queries`` requests; and a rare word (one record's number) over HTTP.
   Comparator, same database, same rare words: a naive ``LIKE '%word%'`` scan over name and
   description, run in-process with no HTTP (what an index without a term table does).
   Ranked text search of common words, in-process on the store (no HTTP): ``collection`` (in
   every record's description), ``galaxy`` (in about a quarter), and the second page of each
   (its cursor); p50 of ``--queries // 10`` (at least 10) each. With ``--postgres DSN`` the
   same records are also written into PostgreSQL (tables ``bench_idx_*``, dropped after; the
   tables are ANALYZEd as autovacuum would) and the same queries timed there.
3. **Publish to searchable**: a local PDS + PLC (the test harness), an in-process indexer
   following it; each round publishes one dataset entry with a fresh name and polls search (5 ms)
   until it is found. Median and max of ``--rounds``. Then, with the indexer stopped,
   ``--catchup`` label records are published (one PDS commit each) and a restarted indexer is
   timed until it has applied them all: PDS commits ingested per second (signature, MST and
   lexicon checks each, one transaction each; includes the websocket replay from the PDS).

Nothing leaves loopback. Writes ``benchmarks/.data/indexer.json`` and prints a markdown table.
"""

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from atdata.atmosphere import Checksum, DatasetRecord, HttpShard, HttpStorage  # noqa: E402
from atdata.discovery import DiscoveryClient  # noqa: E402
from atdata.discovery.firehose import Follower  # noqa: E402
from atdata.discovery.ingest import Ingestor  # noqa: E402
from atdata.discovery.server import make_server  # noqa: E402
from atdata.discovery.store import IndexStore, Mutation  # noqa: E402
from atdata.discovery.verify import KeyResolver  # noqa: E402
from discovery_helpers import Signer, frame, serve_doc  # noqa: E402

PER_COMMIT = 100
WORDS = ["mnist", "weather", "traffic", "audio", "genome", "protein", "galaxy", "speech"]
TAGS = ["vision", "climate", "city", "sound", "biology", "astro", "nlp", "tabular"]


def _records(did: str, start: int) -> dict[str, dict[str, Any]]:
    out = {}
    for i in range(start, start + PER_COMMIT):
        storage = HttpStorage(
            (HttpShard(f"https://data.example.com/{i}.tar", Checksum.sha256("ab" * 32)),)
        )
        value = DatasetRecord(
            f"set-{i}",
            f"at://{did}/science.alt.dataset.schema/s{i % 50}",
            storage,
            description=f"{WORDS[i % 8]} {WORDS[(i // 8) % 8]} collection number {i}",
            tags=(TAGS[i % 8], TAGS[(i // 3) % 8]),
            license=["mit", "cc-by-4.0", "apache-2.0"][i % 3],
        ).to_record()
        value["size"] = {"bytes": 1000 * (i % 997), "samples": i}
        out[f"science.alt.dataset.entry/e{i:07d}"] = value
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_ingest_and_search(sizes: list[int], queries: int, work: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    signer = Signer("did:web:pending")
    with serve_doc([signer]) as host:
        signer.did = f"did:web:{host}"
        did = signer.did
        keys = KeyResolver(["http://localhost:9"])
        store = IndexStore(f"sqlite:///{work / 'bench.sqlite'}")
        store.apply(Mutation(repo_revs={did: "0"}))
        follower = Follower("http://127.0.0.1:9", store, Ingestor(keys))
        server = make_server(store)
        import threading

        threading.Thread(target=server.serve_forever, daemon=True).start()
        client = DiscoveryClient(f"http://127.0.0.1:{server.server_address[1]}")
        done, seq, ingest_s, events = 0, 0, 0.0, 0
        for size in sizes:
            while done < size:
                seq += 1
                body = signer.commit_body(_records(did, done), seq=seq)
                data = frame(body)
                t0 = time.perf_counter()
                follower.handle(data)
                ingest_s += time.perf_counter() - t0
                events += 1
                done += PER_COMMIT
            assert store.count() == size, (store.count(), size)
            mix = [
                {"q": "galaxy"},
                {"tags": ["astro"]},
                {"schema": f"at://{did}/science.alt.dataset.schema/s7"},
                {"license": "mit", "min_bytes": 1000, "max_bytes": 50000},
                {"q": "speech audio", "tags": ["sound"]},
            ]
            lat: list[float] = []
            for i in range(queries):
                kwargs = mix[i % len(mix)]
                t0 = time.perf_counter()
                page = client.search_datasets(**kwargs)  # type: ignore[arg-type]
                lat.append((time.perf_counter() - t0) * 1000)
                assert page, kwargs
            rare: list[float] = []
            for i in range(max(20, queries // 10)):
                word = str((i * 7919) % size)  # one record's number: a rare word
                t0 = time.perf_counter()
                assert len(client.search_datasets(word)) >= 1
                rare.append((time.perf_counter() - t0) * 1000)
            conn = sqlite3.connect(store.url[len("sqlite:///") :])
            scan: list[float] = []
            for i in range(max(20, queries // 10)):
                word = str((i * 7919) % size)
                t0 = time.perf_counter()
                rows = conn.execute(
                    "SELECT uri, cid, did, record FROM idx_records WHERE collection = "
                    "'science.alt.dataset.entry' AND (lower(name) LIKE ? OR lower(description) "
                    "LIKE ?) ORDER BY uri LIMIT 26",
                    (f"%{word}%", f"%{word}%"),
                ).fetchall()
                scan.append((time.perf_counter() - t0) * 1000)
                assert rows
            conn.close()
            common = _common_word_latency(store, max(10, queries // 10))
            results[str(size)] = {
                **common,
                "search_p50_ms": round(_pct(lat, 0.5), 2),
                "search_p99_ms": round(_pct(lat, 0.99), 2),
                "rare_word_p50_ms": round(_pct(rare, 0.5), 2),
                "rare_word_p99_ms": round(_pct(rare, 0.99), 2),
                "like_scan_rare_word_p50_ms": round(_pct(scan, 0.5), 2),
                "like_scan_rare_word_p99_ms": round(_pct(scan, 0.99), 2),
            }
        results["ingest_events_per_s"] = round(events / ingest_s, 1)
        results["ingest_records_per_s"] = round(done / ingest_s, 1)
        server.shutdown()
        server.server_close()
        store.close()
        keys.close()
    return results


COMMON_WORDS = ("collection", "galaxy")


def _common_word_latency(store: IndexStore, reps: int, tag: str = "") -> dict[str, float]:
    """p50 ms of the first and second page of ranked search for words many records hold."""
    out: dict[str, float] = {}
    for word in COMMON_WORDS:
        page, cursor = store.search_datasets(q=word)
        assert len(page) == 25 and cursor, word
        for which, cur in (("page1", None), ("page2", cursor)):
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                store.search_datasets(q=word, cursor=cur)
                times.append((time.perf_counter() - t0) * 1000)
            out[f"{tag}ranked_{word}_{which}_p50_ms"] = round(_pct(times, 0.5), 2)
    return out


def bench_postgres_search(dsn: str, sizes: list[int], queries: int) -> dict[str, Any]:
    """The common-word search of :func:`_common_word_latency` on PostgreSQL at each size."""
    from atdata.discovery.store import IndexedRecord

    did = "did:web:bench.test"
    store = IndexStore(dsn, prefix="bench_idx_")
    store.drop()
    store = IndexStore(dsn, prefix="bench_idx_")
    results: dict[str, Any] = {}
    done = 0
    try:
        for size in sizes:
            while done < size:
                ups = []
                for key, value in _records(did, done).items():
                    collection, rkey = key.split("/")
                    uri = f"at://{did}/{key}"
                    ups.append(
                        IndexedRecord(uri, did, collection, rkey, "bafyrei" + "a" * 52, value)
                    )
                store.apply(Mutation(upserts=ups))
                done += PER_COMMIT
            with store._tx() as cur:  # what autovacuum does after a bulk load
                for table in ("records", "terms"):
                    store._run(cur, f"ANALYZE bench_idx_{table}")
            results[f"pg_{size}"] = _common_word_latency(store, max(10, queries // 10))
    finally:
        store.drop()
        store.close()
    return results


def bench_publish_to_searchable(rounds: int, catchup: int, work: Path) -> dict[str, Any]:
    from atdata.atmosphere import AtmosphereClient, Resolver
    from atdata.discovery.service import Indexer
    from atmosphere_helpers import new_account_session
    from services import launch_pds

    (work / "pds").mkdir()
    with launch_pds(work / "pds") as pds:
        resolver = Resolver(plc_url=pds["plc"], handle_resolver_pds=pds["pds"])
        session = new_account_session(pds, prefix="bench")
        client = AtmosphereClient(session, resolver=resolver)
        indexer = Indexer([pds["pds"]], f"sqlite:///{work / 'p2s.sqlite'}", [pds["plc"]])
        search = DiscoveryClient(indexer.start())
        schema = f"at://{session.did}/science.alt.dataset.schema/s1"
        times: list[float] = []
        for i in range(rounds + 1):
            name = f"fresh{os.urandom(4).hex()}"
            storage = HttpStorage(
                (HttpShard("https://data.example.com/a.tar", Checksum.sha256("ab" * 32)),)
            )
            t0 = time.perf_counter()
            client.publish(DatasetRecord(name, schema, storage))
            while not search.search_datasets(name):
                if time.perf_counter() - t0 > 30:
                    raise RuntimeError("never became searchable")
                time.sleep(0.005)
            if i:  # the first one also backfills the new repository
                times.append(time.perf_counter() - t0)
        indexer.stop()
        # catch-up: PDS commits (one label record each) made while the indexer was down
        from atdata.atmosphere import LabelRecord

        entry = f"at://{session.did}/science.alt.dataset.entry/3n2ukhgqvrc2u"
        for i in range(catchup):
            client.publish(LabelRecord(f"l{i}", entry, str(i)))
        again = Indexer([pds["pds"]], f"sqlite:///{work / 'p2s.sqlite'}", [pds["plc"]])
        t0 = time.perf_counter()
        stats = DiscoveryClient(again.start()).stats
        base = rounds + 1
        while stats()["records"] < base + catchup:
            if time.perf_counter() - t0 > 120:
                raise RuntimeError("the indexer did not catch up")
            time.sleep(0.005)
        catchup_s = time.perf_counter() - t0
        counters = stats()["counters"]
        again.stop()
        resolver.close()
    return {
        "publish_to_searchable_median_s": round(statistics.median(times), 3),
        "publish_to_searchable_max_s": round(max(times), 3),
        "pds_commits_ingested_per_s": round(catchup / catchup_s, 1),
        "catchup_counters": {k: counters.get(k) for k in ("events.commit", "repos.backfilled")},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--catchup", type=int, default=300)
    parser.add_argument("--postgres", metavar="DSN", help="also time ranked search on PostgreSQL")
    parser.add_argument("--search-only", action="store_true", help="skip publish-to-searchable")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        out = bench_ingest_and_search(sizes, args.queries, work)
        if args.postgres:
            out.update(bench_postgres_search(args.postgres, sizes, args.queries))
        if not args.search_only:
            out.update(bench_publish_to_searchable(args.rounds, args.catchup, work))
    dest = ROOT / "benchmarks" / ".data" / "indexer.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))
    print("| measure | value |\n|---|---|")
    for key, value in out.items():
        print(f"| {key} | {value} |")


if __name__ == "__main__":
    main()
