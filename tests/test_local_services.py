"""``atdata local up|status|down`` end to end on this machine: real redis-server, PostgreSQL
(initdb/pg_ctl) and ``rclone serve s3`` started as separate processes, a dataset written through
the printed URLs (index in PostgreSQL and in Redis, shards in S3), data kept across down/up,
and nothing left running after ``down``."""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from atdata.index import Index
from atdata.localdev import Service, local_root
from atdata.localdev.services import LocalDevError, find_pg_bindir, find_rclone, start_s3
from atdata.sample import packable

pytestmark = pytest.mark.services


@packable
class Reading:
    value: int


def _missing() -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server"
    if find_pg_bindir() is None:
        return "PostgreSQL"
    if find_rclone() is None:
        return "rclone"
    return None


@pytest.fixture
def home() -> Iterator[Path]:
    missing = _missing()
    if missing:
        pytest.skip(f"{missing} not installed")
    # PostgreSQL runs as `postgres` when the tests run as root: it must traverse the path
    path = Path(tempfile.mkdtemp(prefix="atdata-local-"))
    path.chmod(0o711)
    yield path
    _cli(path, "down", check=False)
    shutil.rmtree(path, ignore_errors=True)


def _cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATDATA_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "atdata.cli", "local", *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=180,
    )


def _exports(stdout: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in stdout.splitlines():
        words = shlex.split(line)
        assert words[0] == "export", line
        name, _, value = words[1].partition("=")
        out[name] = value
    return out


def _pids(home: Path) -> list[int]:
    import json

    state = json.loads((local_root(home) / "state.json").read_text())
    return [Service.from_dict(d).pid for d in state["services"].values()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def _write_and_read(env: dict[str, str], index_url: str, name: str) -> list[int]:
    from atdata.stores.s3 import S3DataStore

    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        # the endpoint given explicitly: this process's default S3 client keeps the endpoint
        # of the first `up` (a real shell session starts a new process after `up`)
        endpoint = env["AWS_ENDPOINT_URL_S3"]
        store = S3DataStore(bucket=env["ATDATA_S3_BUCKET"], prefix="t", endpoint_url=endpoint)
        with Index(url=index_url, data_store=store) as index:
            if name not in {d.name for d in index.datasets}:
                entry = index.write([{"x": i} for i in range(5)], name)
                assert entry.urls[0].startswith("s3://atdata/t/")
            return [int(s["x"]) for s in index.load(name)]


def test_up_write_status_down_and_up_again(home: Path) -> None:
    started = _cli(home, "up")
    env = _exports(started.stdout)
    assert env["ATDATA_INDEX_URL"].startswith("postgresql://atdata:")
    assert env["ATDATA_REDIS_URL"].startswith("redis://:")
    for key in ("ATDATA_INDEX_URL", "ATDATA_REDIS_URL", "AWS_ENDPOINT_URL_S3"):
        assert "@127.0.0.1:" in env[key] or env[key].startswith("http://127.0.0.1:"), key
    assert ":6379/" not in env["ATDATA_REDIS_URL"] and ":5432/" not in env["ATDATA_INDEX_URL"]
    assert (local_root(home) / "state.json").stat().st_mode & 0o077 == 0  # holds credentials

    assert _write_and_read(env, env["ATDATA_INDEX_URL"], "in-postgres") == list(range(5))
    assert _write_and_read(env, env["ATDATA_REDIS_URL"], "in-redis") == list(range(5))

    status = _cli(home, "status")
    assert status.stdout.count("ok: ") == 3, status.stdout
    assert "***" in status.stdout and env["AWS_SECRET_ACCESS_KEY"] not in status.stdout
    assert _exports(_cli(home, "up").stdout) == env  # running services are kept

    pids = _pids(home)
    assert "stopped: redis, postgres, s3" in _cli(home, "down").stdout
    assert not any(_alive(p) for p in pids)
    assert "no local services" in _cli(home, "status").stdout

    again = _exports(_cli(home, "up").stdout)  # the data is kept (AOF, the cluster, the files)
    assert _write_and_read(again, again["ATDATA_INDEX_URL"], "in-postgres") == list(range(5))
    assert _write_and_read(again, again["ATDATA_REDIS_URL"], "in-redis") == list(range(5))
    pids = _pids(home)
    _cli(home, "down")
    assert not any(_alive(p) for p in pids)


def test_a_dead_service_shows_in_status(home: Path) -> None:
    _cli(home, "up")
    import json

    state = json.loads((local_root(home) / "state.json").read_text())
    s3 = Service.from_dict(state["services"]["s3"])
    os.kill(s3.pid, 15)
    from waiting import wait_until

    wait_until(lambda: not _alive(s3.pid), "rclone to exit")
    status = _cli(home, "status", check=False)
    assert status.returncode == 1 and "DOWN: not running" in status.stdout


def test_with_indexer_a_dataset_published_to_the_local_pds_is_searchable(home: Path) -> None:
    if not (os.environ.get("PDS_NODE") and os.environ.get("PDS_HARNESS_DIR")):
        pytest.skip("the PDS harness is not provisioned (scripts/provision-test-infra.sh)")
    from atdata.discovery import DiscoveryClient
    from atmosphere_helpers import new_account_session
    from waiting import wait_until

    env = _exports(_cli(home, "up", "--with-indexer").stdout)  # implies --with-pds
    assert env["ATDATA_INDEXER_URL"].startswith("http://127.0.0.1:")
    pids = _pids(home)
    assert len(pids) == 5
    with pytest.MonkeyPatch.context() as mp:
        for key in ("ATDATA_PLC_URL", "ATDATA_HANDLE_RESOLVER"):
            mp.setenv(key, env[key])
        session = new_account_session({"pds": env["ATDATA_PDS_URL"]}, prefix="l")
        word = f"w{os.urandom(4).hex()}"
        with Index(home=home / "mine") as index:
            index.write([Reading(i) for i in range(3)], word)
            published = index.publish(word, to=session)
        search = DiscoveryClient(env["ATDATA_INDEXER_URL"])
        found = lambda: [r.uri for r in search.search_datasets(word)]  # noqa: E731
        wait_until(lambda: found() == [str(published.uri)], "the indexer to find it", timeout=30)
    status = _cli(home, "status")
    assert status.stdout.count("ok: ") == 5, status.stdout
    _cli(home, "down")
    assert not any(_alive(p) for p in pids)


def test_as_root_an_unreachable_home_is_reported_and_down_cleans_up(home: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root runs PostgreSQL as another user")
    home.chmod(0o700)  # the `postgres` user cannot traverse it
    got = _cli(home, "up", check=False)
    assert got.returncode == 1
    assert "PostgreSQL runs as `postgres`, which cannot reach" in " ".join(got.stderr.split())
    pids = _pids(home)  # what started before the failure is recorded...
    assert pids
    _cli(home, "down")  # ...and stopped
    assert not any(_alive(p) for p in pids)


def test_an_rclone_older_than_1_70_is_refused_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rclone before 1.70 reads the key pair given by environment differently: its server would
    # refuse every request, so `atdata local up` says which rclone it needs instead
    old = tmp_path / "bin" / "rclone"
    old.parent.mkdir()
    old.write_text("#!/bin/sh\necho 'rclone v1.68.1'\n")
    old.chmod(0o755)
    monkeypatch.setenv("PATH", f"{old.parent}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(LocalDevError, match=r"rclone 1\.68; atdata local needs rclone >= 1\.70"):
        start_s3(tmp_path / "local")
    assert not (tmp_path / "local" / "s3" / "rclone.log").exists()  # nothing was started
