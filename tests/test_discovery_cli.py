"""``atdata search`` and ``atdata indexer`` on the command line, and the XRPC server's answers to
bad requests, against a real index database and server on loopback (records put in directly)."""

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from atdata.cli.app import app
from atdata.discovery import DiscoveryClient
from atdata.discovery.server import make_server
from atdata.discovery.store import IndexedRecord, IndexStore, Mutation
from atdata.errors import AtdataError

runner = CliRunner()
DID = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    import threading

    store = IndexStore(f"sqlite:///{tmp_path / 'i.sqlite'}")
    value = {
        "$type": "science.alt.dataset.entry",
        "name": "weather",
        "description": "hourly station weather",
        "schemaRef": f"at://{DID}/science.alt.dataset.schema/s1",
        "tags": ["sensors"],
        "license": "mit",
    }
    uri = f"at://{DID}/science.alt.dataset.entry/e1"
    store.apply(
        Mutation(
            upserts=[IndexedRecord(uri, DID, "science.alt.dataset.entry", "e1", "bafy", value)]
        )
    )
    server = make_server(store)
    # a short poll: shutdown() waits for the next one (0.5 s by default)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        store.close()


def test_search_prints_uris_and_json(url: str) -> None:
    human = runner.invoke(app, ["search", "weather", "--tag", "sensors", "--indexer", url])
    assert human.exit_code == 0, human.output
    assert f"at://{DID}/science.alt.dataset.entry/e1  weather  hourly station weather" in (
        human.stdout
    )
    as_json = runner.invoke(
        app, ["search", "--license", "mit", "--json"], env={"ATDATA_INDEXER_URL": url}
    )
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert [r["name"] for r in data["results"]] == ["weather"] and data["cursor"] is None
    none = runner.invoke(app, ["search", "rainfall", "--indexer", url])
    assert none.exit_code == 0 and "no datasets found" in none.stderr


def test_search_without_an_indexer_says_how_to_name_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATDATA_INDEXER_URL", raising=False)
    result = runner.invoke(app, ["search", "weather"])
    assert result.exit_code == 1
    assert "ATDATA_INDEXER_URL" in result.stderr and "Traceback" not in result.output


def test_bad_requests_are_answered_as_xrpc_errors(url: str) -> None:
    client = DiscoveryClient(url)
    with pytest.raises(AtdataError, match=r"400.*limit must be an integer"):
        client.query("science.alt.dataset.searchDatasets", {"limit": "many"})
    with pytest.raises(AtdataError, match="501"):
        client.query("science.alt.dataset.noSuchThing", {})
    with pytest.raises(AtdataError, match=r"414|too long"):
        client.query("science.alt.dataset.searchDatasets", {"q": "x" * 5000})
    assert client.stats()["records"] == 1
    result = client.search_datasets("weather")[0]
    assert os.fspath(result) == result.uri  # what load_dataset(result) reads


def test_the_indexer_names_its_extra_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "websockets", None)  # import fails: not installed
    result = runner.invoke(
        app,
        [
            "indexer",
            "--follow",
            "http://127.0.0.1:9",
            "--plc",
            "http://localhost:9",
            "--db",
            f"sqlite:///{tmp_path / 'i.sqlite'}",
            "--listen",
            "127.0.0.1:0",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "pip install 'atdata[indexer]'" in result.stderr
