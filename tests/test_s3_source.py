"""Shards read from real S3 servers on loopback (moto, rclone): streams, ranges, globs, resume."""

from __future__ import annotations

import hashlib
import os
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from atdata import write_samples
from atdata.errors import SourceError
from atdata.sample import DictSample
from atdata.shards.access import read_body
from atdata.shards.offsets import OFFSETS_SUFFIX
from atdata.shards.reader import iter_members, load_offsets
from atdata.sources import open_source
from atdata.sources.s3 import (
    S3Config,
    S3Source,
    configure,
    current_config,
    expand_s3_glob,
    list_s3,
    parse_s3_url,
)
from tcp_proxy import CuttingProxy

if TYPE_CHECKING:
    from s3_backends import S3Backend

pytestmark = pytest.mark.services
pytest_plugins = ["s3_backends"]  # the `s3` fixture: every S3 server on loopback

KEY = "train/a-000000.tar"


@pytest.fixture
def shard(s3: S3Backend, tmp_path: Path) -> tuple[str, bytes, str]:
    """A real shard (about 1 MB) and its sidecar uploaded to s3://<bucket>/train/a-000000.tar."""
    rng = np.random.default_rng(1)
    samples = (DictSample(x=rng.standard_normal(2000).astype(np.float32), i=i) for i in range(120))
    (info,) = write_samples(samples, str(tmp_path / "a-%06d.tar"), maxcount=1000).shard_infos
    data = Path(info.url).read_bytes()
    s3.client.put_object(Bucket=s3.bucket, Key=KEY, Body=data)
    idx = Path(info.url + OFFSETS_SUFFIX).read_bytes()
    s3.client.put_object(Bucket=s3.bucket, Key=KEY + OFFSETS_SUFFIX, Body=idx)
    return f"s3://{s3.bucket}/{KEY}", data, info.url


def _members(source: Any) -> list[tuple[str, int, bytes]]:
    return [(m.name, m.header_offset, bytes(b)) for m, b in iter_members(source)]


def test_members_streamed_from_s3_equal_the_local_read(s3: S3Backend, shard) -> None:
    url, data, local = shard
    src = S3Source(url, config=s3.config)
    assert src.local_path() is None
    assert _members(src) == _members(local)
    assert src.size() == len(data)


def test_ranged_reads_and_the_sidecar(s3: S3Backend, shard) -> None:
    url, data, _ = shard
    src = S3Source(url, config=s3.config)
    assert src.read_range(12_345, 6789) == data[12_345 : 12_345 + 6789]
    src = pickle.loads(pickle.dumps(src))  # picklable for worker processes
    assert src.config == s3.config
    assert src.read_range(len(data) - 1, 1) == data[-1:]
    index = load_offsets(src)
    assert index is not None and len(index) == 120
    offset, size = index.body_range(33)
    assert read_body(src, index, 33) == data[offset : offset + size]
    assert src.read_sidecar(".nope") is None
    with pytest.raises(SourceError, match="beyond its end"):
        src.read_range(len(data) + 10, 5)
    with pytest.raises(SourceError, match="ended at byte"):
        src.read_range(len(data) - 5, 10)


def test_missing_object_and_bucket_are_source_errors(s3: S3Backend) -> None:
    url = f"s3://{s3.bucket}/missing.tar"
    with pytest.raises(SourceError, match="no such object") as err:
        S3Source(url, config=s3.config).open().read(10)
    assert url in str(err.value)
    assert type(err.value.__cause__).__module__.startswith("botocore")
    with pytest.raises(SourceError):
        S3Source("s3://no-such-bucket/x.tar", config=s3.config).read_range(0, 1)


def test_wrong_credentials_are_a_clear_error(s3: S3Backend, shard) -> None:
    if s3.name == "moto":
        pytest.skip("moto accepts any credentials")
    url, _, _ = shard
    wrong = s3.config.replace(secret_access_key="not-the-secret")
    with pytest.raises(SourceError, match="access denied") as err:
        S3Source(url, config=wrong).read_range(0, 10)
    assert "not-the-secret" not in str(err.value)


def test_open_source_uses_the_configured_endpoint(s3: S3Backend, shard) -> None:
    url, data, _ = shard
    cfg = s3.config
    assert current_config() == S3Config()
    with configure(cfg) as active:
        assert active is cfg
        src = open_source(url)
        assert isinstance(src, S3Source) and src.config is cfg
    assert current_config() == S3Config()
    # the source keeps the config it was made with, after the block has ended
    assert src.read_range(0, 512) == data[:512]
    with configure(endpoint_url="http://127.0.0.1:9", region="us-east-1") as other:
        assert current_config() is other
        with configure(cfg):
            assert current_config() is cfg
        assert current_config() is other


def test_configure_is_visible_from_other_threads(s3: S3Backend) -> None:
    seen: list[S3Config] = []
    with configure(s3.config):
        t = threading.Thread(target=lambda: seen.append(current_config()))
        t.start()
        t.join()
    assert seen == [s3.config]


def test_clients_are_shared_per_config(s3: S3Backend) -> None:
    cfg = s3.config
    assert cfg.client() is cfg.client()
    assert cfg.replace(retry=cfg.retry).client() is cfg.client()  # equal configs share
    assert cfg.replace(read_timeout=5).client() is not cfg.client()
    assert "s3cr3t" not in repr(cfg.replace(access_key_id="AK", secret_access_key="s3cr3t"))


def test_glob_listing_paginates_and_matches_within_a_segment(s3: S3Backend) -> None:
    b = s3.bucket
    for i in range(23):
        s3.client.put_object(Bucket=b, Key=f"ds/train-{i:04d}.tar", Body=b"x")
        s3.client.put_object(Bucket=b, Key=f"ds/train-{i:04d}.tar.idx", Body=b"x")
    s3.client.put_object(Bucket=b, Key="ds/sub/train-9999.tar", Body=b"x")
    s3.client.put_object(Bucket=b, Key="ds/valid-0000.tar", Body=b"x")

    with CuttingProxy(s3.port) as proxy:
        proxied = s3.config.replace(endpoint_url=proxy.url)
        urls = list_s3(f"s3://{b}/ds/train-*.tar", config=proxied, page_size=10)
        lists = [r for r in proxy.requests if "list-type=2" in r.target]
    assert urls == [f"s3://{b}/ds/train-{i:04d}.tar" for i in range(23)]
    # 46 keys directly under the prefix, 10 a page: 5 requests, never descending into ds/sub/
    assert len(lists) == 5

    assert list_s3(f"s3://{b}/ds/**.tar", config=s3.config) == sorted(
        [*urls, f"s3://{b}/ds/sub/train-9999.tar", f"s3://{b}/ds/valid-0000.tar"]
    )
    assert list_s3(f"s3://{b}/ds/train-00[0-1]?.tar", config=s3.config) == urls[:20]
    assert list_s3(f"s3://{b}/ds/test-*.tar", config=s3.config) == []
    assert expand_s3_glob(f"s3://{b}/ds/valid-*.tar", config=s3.config) == [
        f"s3://{b}/ds/valid-0000.tar"
    ]
    with pytest.raises(SourceError, match="no S3 objects match"):
        expand_s3_glob(f"s3://{b}/ds/test-*.tar", config=s3.config)


def test_expanding_a_plain_url_makes_no_request() -> None:
    unreachable = S3Config(endpoint_url="http://127.0.0.1:9", region="us-east-1")
    assert expand_s3_glob("s3://b/k/a-000.tar", config=unreachable) == ["s3://b/k/a-000.tar"]


def test_more_than_a_thousand_keys_are_listed(s3: S3Backend) -> None:
    """The server's own page limit (1000 keys) is crossed: continuation tokens are followed."""
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda i: s3.client.put_object(
                    Bucket=s3.bucket, Key=f"many/s-{i:05d}.tar", Body=b""
                ),
                range(1003),
            )
        )
    urls = list_s3(f"s3://{s3.bucket}/many/s-*.tar", config=s3.config)
    assert len(urls) == 1003 and urls[-1] == f"s3://{s3.bucket}/many/s-01002.tar"


def test_a_cut_transfer_resumes_with_a_ranged_get(s3: S3Backend, shard) -> None:
    url, data, _ = shard
    with CuttingProxy(s3.port) as proxy:
        src = S3Source(url, config=s3.config.replace(endpoint_url=proxy.url))
        proxy.cut_next(f"/{s3.bucket}/{KEY}", after_body_bytes=300_000)
        stream = src.open()
        got = stream.read()
        stream.close()
        gets = [r for r in proxy.requests if r.method == "GET"]
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    # the first GET streams everything; the second resumes at the first byte that did not
    # arrive: nothing lost, nothing read twice
    assert [g.range for g in gets] == [None, "bytes=300000-"]


def test_members_survive_a_cut_transfer(s3: S3Backend, shard) -> None:
    url, _, local = shard
    with CuttingProxy(s3.port) as proxy:
        src = S3Source(url, config=s3.config.replace(endpoint_url=proxy.url))
        proxy.cut_next(f"/{s3.bucket}/{KEY}", after_body_bytes=600_000)
        assert _members(src) == _members(local)


def test_a_replaced_object_is_detected_on_resume(s3: S3Backend, shard) -> None:
    url, data, _ = shard
    src = S3Source(url, config=s3.config)
    stream = src.open()
    assert stream.read(1000) == data[:1000]
    stream.seek(2000)  # the next read reopens: pinned to the first answer's ETag and size
    s3.client.put_object(Bucket=s3.bucket, Key=KEY, Body=os.urandom(5000))
    with pytest.raises(SourceError, match="changed"):
        stream.read(10)
    stream.close()


def test_bad_urls_are_refused(s3: S3Backend) -> None:
    assert parse_s3_url("s3://bucket/a/b.tar") == ("bucket", "a/b.tar")
    for bad in ("s3:///key.tar", "s3://bucket/", "s3://bucket", "s3://bu cket/x.tar"):
        with pytest.raises(SourceError):
            S3Source(bad, config=s3.config)
