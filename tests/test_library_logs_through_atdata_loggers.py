"""The library logs what it does through ``logging.getLogger("atdata.<module>")`` and installs
no handler; the CLI's ``-v``/``-vv`` show those records on stderr and ``--quiet`` leaves only
errors. Secrets in logged URLs are masked.

Real components: a loopback HTTP server that fails on demand, shards on disk, the default SQLite
index in a temporary ``$ATDATA_HOME``.
"""

import io
import logging
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from typer.testing import CliRunner

import atdata
from atdata.cli.app import app
from atdata.errors import IntegrityError
from atdata.sources import RetryPolicy, open_source
from atdata.sources.cache import wrap_source
from atdata.sources.http import HttpSource
from http_server import FileServer

runner = CliRunner()
FAST = RetryPolicy(attempts=4, initial_delay=0.01, max_delay=0.02)
SECRET = "s3cr3t-signature-0123"


@atdata.packable
class Point:
    idx: int
    xy: NDArray[np.float32]


def _points(n: int) -> list[Point]:
    return [Point(i, np.full(2, i, np.float32)) for i in range(n)]


def _records(caplog: pytest.LogCaptureFixture, name: str, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name and r.levelno == level]


def test_importing_atdata_adds_no_handler_but_a_null_one() -> None:
    code = (
        "import logging\n"
        "root = list(logging.getLogger().handlers)\n"
        "import atdata, atdata.cli.app, atdata.sources.cache\n"
        "assert logging.getLogger().handlers == root, logging.getLogger().handlers\n"
        "hs = logging.getLogger('atdata').handlers\n"
        "assert all(type(h) is logging.NullHandler for h in hs), hs\n"
        "assert logging.getLogger('atdata').level == logging.NOTSET\n"
        "print('clean')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "clean"


def test_a_retry_is_logged_as_a_warning_with_the_url_redacted(
    http_server: FileServer, caplog: pytest.LogCaptureFixture
) -> None:
    info = atdata.write_samples(_points(5), str(http_server.root / "p-%06d.tar")).shard_infos[0]
    url = http_server.url_for(Path(info.url).name) + f"?X-Amz-Signature={SECRET}"
    http_server.fail_next(2, status=503)
    with caplog.at_level(logging.INFO, logger="atdata"), HttpSource(url, retry=FAST) as src:
        with src.open() as stream:
            assert stream.read() == Path(info.url).read_bytes()
    retries = _records(caplog, "atdata.sources._retry", logging.WARNING)
    assert len(retries) == 2
    message = retries[0].getMessage()
    assert "retrying" in message and "attempt 1 of 4" in message and "HTTP 503" in message
    assert SECRET not in caplog.text and "X-Amz-Signature=***" in message


def test_verification_passes_at_debug_and_failures_at_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    info = atdata.write_samples(_points(5), str(tmp_path / "v-%06d.tar")).shard_infos[0]
    with caplog.at_level(logging.DEBUG, logger="atdata"):
        good = wrap_source(open_source(info.url), expected_sha256=info.checksum.digest)
        with good.open() as stream:
            stream.read()
        passed = [r for r in caplog.records if "verified" in r.getMessage()]
        assert passed and all(r.levelno == logging.DEBUG for r in passed)
        assert all(r.name.startswith("atdata.sources.") for r in passed)
        caplog.clear()
        bad = wrap_source(open_source(info.url), expected_sha256="0" * 64)
        with pytest.raises(IntegrityError):
            with bad.open() as stream:
                stream.read()
    failed = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(failed) == 1 and "failed verification" in failed[0].getMessage()
    assert failed[0].name.startswith("atdata.sources.")
    assert info.url in failed[0].getMessage()


def test_the_shard_cache_logs_misses_hits_and_evictions_at_debug(
    http_server: FileServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from atdata.sources.cache import ShardCache

    infos = atdata.write_samples(
        _points(40), str(http_server.root / "c-%06d.tar"), maxcount=20
    ).shard_infos
    one_shard = max(Path(i.url).stat().st_size for i in infos)
    cache = ShardCache(tmp_path / "cache", max_bytes=one_shard + 10)  # room for one shard
    urls = [http_server.url_for(Path(i.url).name) for i in infos]
    with caplog.at_level(logging.DEBUG, logger="atdata.sources.cache"):
        assert cache.get(HttpSource(urls[0], retry=FAST), infos[0].checksum.digest) is not None
        assert cache.get(HttpSource(urls[0], retry=FAST), infos[0].checksum.digest) is not None
        assert cache.get(HttpSource(urls[1], retry=FAST), infos[1].checksum.digest) is not None
    messages = [r.getMessage() for r in _records(caplog, "atdata.sources.cache", logging.DEBUG)]
    looked_up = ("shard cache hit:", "shard cache miss:")
    assert [m.split(":")[0] for m in messages if m.startswith(looked_up)] == [
        "shard cache miss",
        "shard cache hit",
        "shard cache miss",
    ]
    assert any("evicted" in m for m in messages)


def test_a_slow_remote_read_is_logged_at_info(
    http_server: FileServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from atdata.sources import _retry

    info = atdata.write_samples(_points(5), str(http_server.root / "s-%06d.tar")).shard_infos[0]
    monkeypatch.setattr(_retry, "SLOW_READ_SECONDS", 0.0)  # every read counts as slow
    with (
        caplog.at_level(logging.INFO, logger="atdata"),
        HttpSource(http_server.url_for(Path(info.url).name), retry=FAST) as src,
    ):
        with src.open() as stream:
            stream.read()
    (slow,) = _records(caplog, "atdata.sources._retry", logging.INFO)
    assert "was slow" in slow.getMessage() and str(info.size) in slow.getMessage()


def _shard_with_a_bad_sample(path: Path) -> None:
    bodies = [p.to_bytes() for p in _points(3)]
    bodies[1] = b"\xc1\xc1\xc1"  # not msgpack
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for i, body in enumerate(bodies):
            member = tarfile.TarInfo(f"{i:08d}.msgpack")
            member.size = len(body)
            tar.addfile(member, io.BytesIO(body))


@pytest.mark.parametrize("batch", [None, 2])
def test_a_sample_skipped_under_on_error_skip_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, batch: int | None
) -> None:
    path = tmp_path / "bad-000000.tar"
    _shard_with_a_bad_sample(path)
    ds = atdata.Dataset(str(path), Point, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="atdata"):
        if batch is None:
            got = [int(p.idx) for p in ds.ordered()]
        else:
            got = [int(i) for b in ds.ordered(batch_size=batch) for i in b.idx]
    assert got == [0, 2]
    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 1 and skipped[0].levelno == logging.WARNING
    assert skipped[0].name in ("atdata.loader", "atdata.planreader")
    assert str(path) in skipped[0].getMessage()


# -- the CLI -----------------------------------------------------------------------------------
@pytest.fixture
def demo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("ATDATA_HOME", str(home))
    monkeypatch.delenv("ATDATA_INDEX_URL", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    with atdata.Index() as index:
        index.write(_points(20), "pts", maxcount=10)
    return home


def _corrupt_first_shard(home: Path) -> Path:
    shard = sorted((home / "data" / "pts").rglob("*.tar"))[0]
    data = bytearray(shard.read_bytes())
    data[700] ^= 0xFF
    shard.write_bytes(bytes(data))
    return shard


def test_cli_verbosity_shows_library_log_lines_on_stderr(demo_home: Path) -> None:
    plain = runner.invoke(app, ["verify", "pts"])
    assert plain.exit_code == 0 and "atdata." not in plain.stderr
    debug = runner.invoke(app, ["-vv", "verify", "pts"])
    assert debug.exit_code == 0, debug.output
    assert "DEBUG atdata.stores.base:" in debug.stderr and "verified" in debug.stderr
    assert "atdata." not in debug.stdout  # logs never mix into stdout
    info = runner.invoke(app, ["-v", "verify", "pts"])
    assert info.exit_code == 0 and "DEBUG" not in info.stderr

    shard = _corrupt_first_shard(demo_home)
    loud = runner.invoke(app, ["-v", "verify", "pts"])
    assert loud.exit_code == 1
    assert "WARNING atdata.stores.base: failed verification" in loud.stderr
    assert str(shard) in loud.stderr
    quiet = runner.invoke(app, ["--quiet", "verify", "pts", "--json"])
    assert quiet.exit_code == 1 and quiet.stderr == ""
    assert str(shard) in quiet.stdout  # the result itself is not a log line
    # the logger is left as it was found: no handler, no level
    assert not [h for h in logging.getLogger("atdata").handlers if h.level != logging.NOTSET]
    assert logging.getLogger("atdata").level == logging.NOTSET


def test_quiet_drops_notes_and_warnings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    path = tmp_path / "plain.tar"
    _shard_with_a_bad_sample(path)  # no .idx sidecar: inspect notes that it scanned
    noted = runner.invoke(app, ["inspect", str(path)])
    assert noted.exit_code == 0 and "have no offset index" in noted.stderr
    quiet = runner.invoke(app, ["-q", "inspect", str(path)])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert quiet.stdout == noted.stdout


def test_the_cli_redacts_what_it_logs(
    http_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    info = atdata.write_samples(_points(5), str(http_server.root / "r-%06d.tar")).shard_infos[0]
    url = http_server.url_for(Path(info.url).name) + f"?token={SECRET}"
    http_server.fail_next(1, status=503)
    result = runner.invoke(app, ["-v", "preview", url, "-n", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert "WARNING atdata.sources._retry: retrying" in result.stderr
    assert SECRET not in result.output and "token=***" in result.stderr
