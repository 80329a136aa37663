"""Shards read over HTTP from a real loopback server: streaming, Range reads, retries, resume."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from atdata import ShardInfo, write_samples
from atdata.errors import SourceError
from atdata.sample import PackableSample
from atdata.shards.access import read_body
from atdata.shards.offsets import OFFSETS_SUFFIX, OffsetIndex
from atdata.shards.reader import iter_members, load_offsets
from atdata.sources import open_source
from atdata.sources._retry import RetryPolicy
from atdata.sources.http import HttpSource
from http_server import FileServer

pytestmark = pytest.mark.services

FAST = RetryPolicy(attempts=4, initial_delay=0.01, max_delay=0.05)


class Frame(PackableSample):
    pixels: np.ndarray
    label: int


def _write_shard(root: Path, n: int = 40, side: int = 64) -> ShardInfo:
    rng = np.random.default_rng(0)
    samples = (
        Frame(pixels=rng.integers(0, 255, (side, side, 3), dtype=np.uint8), label=i)
        for i in range(n)
    )
    (info,) = write_samples(samples, str(root / "frames-%06d.tar"), maxcount=n).shard_infos
    return info


def _members(source: object) -> list[tuple[str, int, bytes]]:
    return [(m.name, m.header_offset, bytes(body)) for m, body in iter_members(source)]  # type: ignore[arg-type]


@pytest.fixture
def shard(http_server: FileServer) -> tuple[ShardInfo, str, bytes]:
    info = _write_shard(http_server.root)
    name = Path(info.url).name
    return info, http_server.url_for(name), Path(info.url).read_bytes()


def test_streamed_members_equal_the_local_read(http_server: FileServer, shard) -> None:
    info, url, _data = shard
    with HttpSource(url, retry=FAST) as src:
        assert src.local_path() is None
        remote = _members(src)
    assert remote == _members(info.url)
    assert len(remote) == info.count == 40
    assert [r.range for r in http_server.requests] == [None]  # one plain GET, no resume


def test_open_source_picks_http_for_http_urls(shard) -> None:
    _, url, _ = shard
    src = open_source(url)
    assert isinstance(src, HttpSource)
    assert src.url == url


def test_range_read_returns_exactly_those_bytes(http_server: FileServer, shard) -> None:
    _, url, data = shard
    with HttpSource(url, retry=FAST) as src:
        assert src.read_range(1000, 5000) == data[1000:6000]
        assert src.read_range(len(data) - 10, 10) == data[-10:]
        assert src.read_range(5, 0) == b""
        assert src.size() == len(data)
    ranges = [r.range for r in http_server.requests]
    assert ranges[:2] == ["bytes=1000-5999", f"bytes={len(data) - 10}-{len(data) - 1}"]


def test_random_access_through_the_offset_sidecar(shard) -> None:
    info, url, data = shard
    with HttpSource(url, retry=FAST) as src:
        index = load_offsets(src)
        assert index is not None and len(index) == info.count
        assert index.sha256 == info.checksum.digest
        offset, size = index.body_range(7)
        assert read_body(src, index, 7) == data[offset : offset + size]
        assert src.read_sidecar(".missing") is None


def test_range_beyond_the_end_is_a_clear_error(shard) -> None:
    _, url, data = shard
    with HttpSource(url, retry=FAST) as src, pytest.raises(SourceError, match="beyond its end"):
        src.read_range(len(data) + 100, 10)


def test_503s_are_retried_then_the_stream_succeeds(http_server: FileServer, shard) -> None:
    _info, url, data = shard
    http_server.fail_next(2, status=503)
    with HttpSource(url, retry=FAST) as src:
        stream = src.open()
        assert stream.read() == data
        stream.close()
        http_server.fail_next(3, status=502)
        assert src.read_range(100, 200) == data[100:300]
    assert http_server.count("GET") == 3 + 4


def test_persistent_5xx_fails_after_the_configured_attempts(http_server: FileServer, shard) -> None:
    _, url, _ = shard
    http_server.fail_next(100, status=503)
    with HttpSource(url, retry=FAST) as src, pytest.raises(SourceError, match="4 attempts"):
        src.read_range(0, 10)
    assert http_server.count("GET") == 4


def test_client_errors_name_the_url_and_status(http_server: FileServer, shard) -> None:
    _, url, _ = shard
    http_server.fail_next(1, status=403)
    with HttpSource(url, retry=FAST) as src, pytest.raises(SourceError) as err:
        src.open().read(10)
    assert url in str(err.value) and "403" in str(err.value)
    assert http_server.count("GET") == 1  # 4xx is not retried
    missing = http_server.url_for("nope.tar")
    with HttpSource(missing) as src, pytest.raises(SourceError, match="404"):
        list(iter_members(src))
    with HttpSource(missing) as src:
        assert src.read_sidecar(OFFSETS_SUFFIX) is None


def test_dropped_connection_resumes_with_a_range_at_the_right_offset(
    http_server: FileServer, shard
) -> None:
    info, url, data = shard
    cut = 100_000
    http_server.drop_next(1, after_bytes=cut)
    with HttpSource(url, retry=FAST) as src:
        stream = src.open()
        got = stream.read()
        assert stream.reopens == 1  # type: ignore[attr-defined]
        stream.close()
    assert got == data
    assert hashlib.sha256(got).hexdigest() == info.checksum.digest
    gets = [r for r in http_server.requests if r.method == "GET"]
    assert [r.range for r in gets] == [None, f"bytes={cut}-"]


def test_members_survive_several_drops_mid_stream(http_server: FileServer, shard) -> None:
    info, url, _ = shard
    http_server.drop_next(3, after_bytes=70_000)
    with HttpSource(url, retry=FAST) as src:
        remote = _members(src)
    assert remote == _members(info.url)
    ranges = [r.range for r in http_server.requests]
    assert ranges == [None, "bytes=70000-", "bytes=140000-", "bytes=210000-"]


def test_a_dropped_range_read_resumes_inside_the_range(http_server: FileServer, shard) -> None:
    _, url, data = shard
    http_server.drop_next(1, after_bytes=3000)
    with HttpSource(url, retry=FAST) as src:
        assert src.read_range(10_000, 50_000) == data[10_000:60_000]
    assert [r.range for r in http_server.requests] == ["bytes=10000-59999", "bytes=13000-59999"]


def test_seek_then_read_asks_for_the_new_position(http_server: FileServer, shard) -> None:
    _, url, data = shard
    with HttpSource(url, retry=FAST) as src:
        stream = src.open()
        assert stream.read(10) == data[:10]
        stream.seek(50_000)
        assert stream.read(100) == data[50_000:50_100]
        stream.close()
    assert http_server.requests[-1].range == "bytes=50000-"


def test_a_server_ignoring_range_still_gives_the_right_bytes(tmp_path: Path) -> None:
    """A server that answers 200 to every Range request: the source skips to the position."""
    data = os.urandom(300_000)
    (tmp_path / "x.tar").write_bytes(data)
    with FileServer(tmp_path) as server:
        server_ignores_range(server)
        with HttpSource(server.url_for("x.tar"), retry=FAST) as src:
            assert src.read_range(123_456, 1000) == data[123_456:124_456]
            server.drop_next(1, after_bytes=50_000)
            assert src.open().read() == data


def server_ignores_range(server: FileServer) -> None:
    """Make ``server`` drop Range headers before handling (a server without range support)."""
    handler = server._httpd.RequestHandlerClass
    original = handler._serve  # type: ignore[attr-defined]

    def serve(self, *, body: bool) -> None:  # type: ignore[no-untyped-def]
        if "Range" in self.headers:
            del self.headers["Range"]
        original(self, body=body)

    class NoRange(handler):  # type: ignore[misc, valid-type]
        _serve = serve

    server._httpd.RequestHandlerClass = NoRange


def test_redirects_to_other_schemes_are_refused(tmp_path: Path) -> None:
    import http.server
    import threading

    class Redirect(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            target = "file:///etc/passwd" if self.path == "/evil" else "/evil"
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/start.tar"
        with HttpSource(url, retry=FAST) as src, pytest.raises(SourceError, match="not http"):
            src.read_range(0, 10)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_connection_refused_is_retried_then_translated() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with HttpSource(f"http://127.0.0.1:{port}/a.tar", retry=FAST) as src:
        with pytest.raises(SourceError, match="4 attempts") as err:
            src.read_range(0, 10)
    assert not type(err.value).__module__.startswith("httpx")
    assert type(err.value.__cause__).__module__.startswith("httpx")


def test_stream_is_a_readable_binary_file() -> None:
    data = b"x" * 10
    assert io.BytesIO(data).read() == data  # sanity for the protocol used below
    with pytest.raises(SourceError, match="http"):
        HttpSource("ftp://example.invalid/a.tar")


def test_importing_the_sources_does_not_import_httpx() -> None:
    code = (
        "import sys, atdata.sources, atdata.sources.http, atdata.sources.s3; "
        "assert 'httpx' not in sys.modules, 'httpx imported'; "
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto imported'; "
        "print(atdata.sources.registered_schemes())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "'http'" in out.stdout and "'s3'" in out.stdout


@pytest.mark.parametrize(
    "url", ["pipe:cat /etc/passwd", "PIPE:ls", "gopher://x/y.tar", "ftp://h/a"]
)
def test_pipe_and_unknown_schemes_are_refused(url: str) -> None:
    with pytest.raises(SourceError) as err:
        open_source(url)
    assert url in str(err.value) or repr(url) in str(err.value)


def test_offset_index_roundtrip_over_http(shard) -> None:
    info, url, _ = shard
    with HttpSource(url, retry=FAST) as src:
        raw = src.read_sidecar(OFFSETS_SUFFIX)
    assert raw is not None
    assert OffsetIndex.from_bytes(raw, url).shard_size == info.size


def test_a_shard_replaced_mid_stream_is_an_error_not_a_splice(
    http_server: FileServer, shard
) -> None:
    info, url, data = shard
    with HttpSource(url, retry=FAST) as src:
        stream = src.open()
        assert stream.read(1000) == data[:1000]
        stream.seek(5000)  # the next read reopens with a Range request
        path = Path(info.url)
        path.write_bytes(data[::-1])  # same size, new bytes, new mtime and ETag
        os.utime(path, ns=(1, 2_000_000_000_000_000_000))
        with pytest.raises(SourceError, match="changed while it was being read"):
            stream.read(10)
        stream.close()


def test_shards_share_one_client_and_one_connection(
    http_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import atdata.net.transport as transport

    infos: list[ShardInfo] = []
    for i in range(3):
        sub = http_server.root / f"part{i}"
        sub.mkdir()
        infos.append(_write_shard(sub, n=5))
    connections: list[object] = []
    verify = http_server._httpd.verify_request

    def counting(request: object, client_address: object) -> bool:
        connections.append(client_address)
        return verify(request, client_address)  # type: ignore[arg-type]

    monkeypatch.setattr(http_server._httpd, "verify_request", counting)
    monkeypatch.setattr(transport, "_SHARED", {})
    sources = [
        open_source(http_server.url_for(str(Path(i.url).relative_to(http_server.root))))
        for i in infos
    ]
    for info, src in zip(infos, sources, strict=True):
        assert _members(src) == _members(info.url)
    assert len({id(src._get_client()) for src in sources}) == 1  # type: ignore[attr-defined]
    assert len(transport._SHARED) == 1
    assert len(http_server.requests) == 3
    assert len(connections) == 1  # one kept-alive connection served all three shards


def test_a_forked_worker_does_not_reuse_the_parents_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import atdata.net.transport as transport

    monkeypatch.setattr(transport, "_SHARED", {})
    src = HttpSource("http://127.0.0.1:1/a.tar")
    parent = src._get_client()
    assert src._get_client() is parent
    monkeypatch.setattr(transport.os, "getpid", lambda: -1)  # as seen from a forked child
    child = src._get_client()
    assert child is not parent
    injected = transport.require("httpx", "http").Client()
    try:
        assert HttpSource("http://127.0.0.1:1/a.tar", client=injected)._get_client() is injected
    finally:
        injected.close()
        child.close()
        parent.close()


def test_a_source_over_a_filled_cache_does_not_import_httpx(shard, tmp_path: Path) -> None:
    from atdata.sources.cache import CachedSource, ShardCache

    _info, url, _ = shard
    cache_dir = tmp_path / "cache"
    first = CachedSource(HttpSource(url, retry=FAST), ShardCache(cache_dir))
    assert load_offsets(first) is not None  # fills the sidecar too
    expected = _members(first)
    code = (
        "import sys\n"
        "from atdata.shards.reader import iter_members, load_offsets\n"
        "from atdata.sources.cache import CachedSource, ShardCache\n"
        "from atdata.sources.http import HttpSource\n"
        "from atdata.sources.s3 import S3Source\n"
        f"src = CachedSource(HttpSource({url!r}), ShardCache({str(cache_dir)!r}))\n"
        "assert load_offsets(src) is not None\n"
        "print(sum(len(body) for _m, body in iter_members(src)))\n"
        "S3Source('s3://bucket/key.tar')\n"
        "assert 'httpx' not in sys.modules, 'httpx imported'\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == sum(len(body) for _n, _o, body in expected)


def test_a_missing_httpx_is_reported_when_the_source_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("httpx", "boto3") else real(name, *a),
    )
    with pytest.raises(ImportError, match=r"atdata\[http\]"):
        HttpSource("http://127.0.0.1:1/a.tar")
    from atdata.sources.s3 import S3Source

    with pytest.raises(ImportError, match=r"atdata\[s3\]"):
        S3Source("s3://bucket/key.tar")


def test_stream_buffers_are_never_rewritten_under_handed_out_bodies(
    http_server: FileServer, shard, monkeypatch: pytest.MonkeyPatch
) -> None:
    import atdata.shards.reader as reader

    info, url, _ = shard
    monkeypatch.setattr(reader, "_STREAM_CHUNK", 4096)  # many refills; members outgrow a chunk
    with HttpSource(url, retry=FAST) as src:
        bodies = [(m.name, m.header_offset, body) for m, body in iter_members(src)]
    assert all(isinstance(b, memoryview) and b.readonly for _n, _o, b in bodies)
    assert [(n, o, bytes(b)) for n, o, b in bodies] == _members(info.url)
