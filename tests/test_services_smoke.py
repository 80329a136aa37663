"""Each test service fixture starts a real server that answers like the real thing."""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from typing import Any

import pytest

from http_server import FileServer

pytestmark = pytest.mark.services

NSID = "science.alt.dataset.smoke"


def test_redis_answers_ping_set_get(redis_url: str) -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
        client.set("atdata:smoke", b"v1")
        assert client.get("atdata:smoke") == b"v1"
    finally:
        client.close()


def test_postgres_answers_select(postgres_dsn: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_s3_put_then_get_roundtrips_bytes(s3_client: Any) -> None:
    data = os.urandom(4096)
    s3_client.create_bucket(Bucket="smoke")
    s3_client.put_object(Bucket="smoke", Key="a/b.bin", Body=data)
    assert s3_client.get_object(Bucket="smoke", Key="a/b.bin")["Body"].read() == data
    ranged = s3_client.get_object(Bucket="smoke", Key="a/b.bin", Range="bytes=100-199")
    assert ranged["Body"].read() == data[100:200]


def test_s3_state_is_reset_between_tests(s3_client: Any) -> None:
    assert s3_client.list_buckets()["Buckets"] == []


def _get(url: str, range_: str | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers={"Range": range_} if range_ else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, dict(resp.headers), resp.read()


def test_http_range_request_returns_206_with_the_right_bytes(http_server: FileServer) -> None:
    data = os.urandom(10_000)
    (http_server.root / "shard-000.tar").write_bytes(data)
    url = http_server.url_for("shard-000.tar")

    status, headers, body = _get(url, "bytes=100-1099")
    assert (status, body) == (206, data[100:1100])
    assert headers["Content-Range"] == "bytes 100-1099/10000"

    status, _, body = _get(url, "bytes=-10")
    assert (status, body) == (206, data[-10:])

    status, headers, body = _get(url)
    assert (status, body) == (200, data)
    assert headers["Accept-Ranges"] == "bytes"

    assert http_server.requests == [
        ("GET", "/shard-000.tar", "bytes=100-1099"),
        ("GET", "/shard-000.tar", "bytes=-10"),
        ("GET", "/shard-000.tar", None),
    ]
    assert http_server.count("GET", "/shard-000.tar") == 3


def test_http_unsatisfiable_range_and_missing_file(http_server: FileServer) -> None:
    (http_server.root / "small.bin").write_bytes(b"abc")
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(http_server.url_for("small.bin"), "bytes=10-20")
    assert err.value.code == 416
    err.value.close()
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(http_server.url_for("nope.bin"))
    assert err.value.code == 404
    err.value.close()


def test_http_injected_drop_cuts_the_body_then_recovers(http_server: FileServer) -> None:
    data = os.urandom(200_000)
    (http_server.root / "big.bin").write_bytes(data)
    url = http_server.url_for("big.bin")

    http_server.drop_next(1, after_bytes=1000)
    with pytest.raises(http.client.IncompleteRead) as err:
        _get(url)
    assert len(err.value.partial) == 1000

    # Resume with a Range request from where the cut happened.
    status, _, rest = _get(url, "bytes=1000-")
    assert (status, rest) == (206, data[1000:])
    assert http_server.count("GET") == 2


def test_http_injected_5xx_for_the_next_n_requests(http_server: FileServer) -> None:
    (http_server.root / "x.bin").write_bytes(b"payload")
    http_server.fail_next(2, status=503)
    for _ in range(2):
        with pytest.raises(urllib.error.HTTPError) as err:
            _get(http_server.url_for("x.bin"))
        assert err.value.code == 503
        err.value.close()
    assert _get(http_server.url_for("x.bin"))[2] == b"payload"
    assert len(http_server.requests) == 3


def test_pds_record_and_blob_roundtrip(pds: dict[str, Any], pds_account: Any) -> None:
    from atproto import models

    client = pds_account
    did = client.me.did
    assert client.me.handle.endswith(".test")

    record = {"$type": NSID, "name": "smoke", "version": "1.0.0"}
    created = client.com.atproto.repo.create_record(
        models.ComAtprotoRepoCreateRecord.Data(
            repo=did, collection=NSID, record=record, validate_=False
        )
    )
    rkey = created.uri.rsplit("/", 1)[1]
    got = client.com.atproto.repo.get_record(
        models.ComAtprotoRepoGetRecord.Params(repo=did, collection=NSID, rkey=rkey)
    )
    assert got.uri == created.uri
    assert got.value["name"] == "smoke"

    blob = os.urandom(256 * 1024)
    uploaded = client.upload_blob(blob)
    # A blob no record refers to cannot be fetched: attach it to a record first.
    client.com.atproto.repo.create_record(
        models.ComAtprotoRepoCreateRecord.Data(
            repo=did,
            collection=NSID,
            record={**record, "data": uploaded.blob.model_dump(by_alias=True)},
            validate_=False,
        )
    )
    fetched = client.com.atproto.sync.get_blob(
        models.ComAtprotoSyncGetBlob.Params(did=did, cid=uploaded.blob.cid.encode())
    )
    assert fetched == blob
