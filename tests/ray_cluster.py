"""A REAL two-node Ray cluster on loopback, started once per test session (``ray_cluster``).

Both nodes run on this machine from this interpreter's environment (no runtime_env shipping):
a head on 127.0.0.2 and a second node on 127.0.0.3, one CPU each, a small object store, no
dashboard, usage stats off. Loopback addresses other than 127.0.0.1 are used on purpose: Ray
(2.5x-2.6x) rewrites ``127.0.0.1``/``localhost`` given as a node address into the machine's
routable IP, other 127/8 addresses are kept as given. Every process of the cluster runs in two
process groups started here (``ray start --block`` in a new session each), which teardown
terminates (then kills) by group: nothing else on the machine is touched (no ``ray stop``, which
stops every Ray of the user).

``RAY_ENABLE_UV_RUN_RUNTIME_ENV=0`` for the nodes and this driver: run under ``uv run``, Ray would
otherwise ship the working tree as a runtime_env package and start every worker with ``uv run``
(what made an earlier attempt's Ray test time out on this 2-core box); both nodes share this
interpreter's environment instead.

The nodes get ``PYTHONPATH`` with tests/ (the tests' transforms and sample types are imported
by reference) and the moto test credentials as ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``:
derive tasks carry no credentials, the nodes read them from their environment.

Skips when ray is not installed, fails instead under ``ATDATA_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services import on_a_free_port, unavailable
from waiting import wait_until

__all__ = ["RayCluster", "ray_cluster"]

# A loopback /16 of this run's own (from the pid, or ATDATA_TEST_RAY_NET, which `.ci/run` sets
# apart for the jobs it runs side by side): a cluster left behind by another test run on the
# same machine (another checkout, a killed run) holds its addresses, and a node started on an
# address where another cluster's node runs never comes up.
_NET = int(os.environ.get("ATDATA_TEST_RAY_NET") or 2 + os.getpid() % 250)
HEAD_IP = f"127.{_NET}.0.2"
NODE_IP = f"127.{_NET}.0.3"
TESTS = Path(__file__).resolve().parent
OBJECT_STORE_BYTES = 80 * 1024 * 1024

# Read by Ray when it is imported: set before any test imports it. No runtime_env: under
# `uv run` Ray would package the working tree for the workers and start each one with `uv run`.
os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
# No token auth, and no token from ~/.ray/auth_token (a local ray.init of Ray 2.6x writes one
# there; a head that picks it up refuses nodes and drivers that do not send it).
_AUTH_OFF = {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN_PATH": "/nonexistent/atdata-ray-token"}
os.environ.update(_AUTH_OFF)


@dataclass
class RayCluster:
    address: str
    driver_ip: str
    ray: Any

    def node_ips(self) -> list[str]:
        return sorted(n["NodeManagerAddress"] for n in self.ray.nodes() if n["Alive"])


def cluster_env() -> dict[str, str]:
    """The environment of this cluster's nodes, which also suits a driver process joining it
    (``RAY_ADDRESS`` left out)."""
    env = dict(os.environ)
    env.update(
        RAY_USAGE_STATS_ENABLED="0",
        RAY_ENABLE_UV_RUN_RUNTIME_ENV="0",
        PYTHONUNBUFFERED="1",  # the logs are polled for the start message
        PYTHONPATH=os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH")) if p),
        AWS_ACCESS_KEY_ID=os.environ.get("ATDATA_TEST_S3_KEY", "testing"),
        AWS_SECRET_ACCESS_KEY=os.environ.get("ATDATA_TEST_S3_SECRET", "testing"),
        AWS_DEFAULT_REGION="us-east-1",
    )
    env.pop("RAY_ADDRESS", None)
    env.update(_AUTH_OFF)
    return env


def _ray_start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # fmt: off
    argv = [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--num-cpus=1",
        f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats", *args,
    ]
    # fmt: on
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the process group of ``proc`` (a ``ray start --block`` and what it started)."""
    # a throwaway cluster: a short grace (Ray drains for up to 30 s on SIGTERM), then SIGKILL
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            wait_until(lambda: not _group_alive(proc.pid), f"Ray group {proc.pid} to exit", grace)
            return
        except AssertionError:
            continue
        finally:
            proc.poll()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # zombies count as alive for killpg; our own child is reaped here
    return not _only_zombies(pgid)


def _only_zombies(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return False
    return True


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    try:
        import ray
    except ImportError:
        unavailable("ray is not installed: uv sync --all-extras (the 'ray' extra)")
    workdir = _short_tempdir()
    env = cluster_env()
    groups: list[subprocess.Popen[bytes]] = []

    def start_head(port: int) -> subprocess.Popen[bytes]:
        # fmt: off
        head = _ray_start(
            ["--head", f"--node-ip-address={HEAD_IP}", f"--port={port}",
             "--include-dashboard=false", f"--temp-dir={workdir}"],
            env, Path(workdir) / "head.log",
        )
        # fmt: on
        groups.append(head)
        try:
            wait_until(
                lambda: head.poll() is not None or _started(Path(workdir) / "head.log"),
                "the Ray head to start",
                90,
            )
        except AssertionError as exc:
            raise RuntimeError(str(exc)) from exc
        if head.poll() is not None:
            raise RuntimeError(f"ray start --head exited with {head.returncode}")
        return head

    try:
        try:
            port, _ = on_a_free_port(start_head)
        except (RuntimeError, OSError) as exc:
            unavailable(f"cannot start a Ray head on {HEAD_IP}: {exc}; log in {workdir}")
        address = f"{HEAD_IP}:{port}"
        node_log = Path(workdir) / "node.log"
        groups.append(
            _ray_start([f"--address={address}", f"--node-ip-address={NODE_IP}"], env, node_log)
        )
        wait_until(lambda: _started(node_log), "the second Ray node to start", 90)
        ray.init(address=address, _node_ip_address=HEAD_IP, log_to_driver=False)
        cluster = RayCluster(address, HEAD_IP, ray)
        wait_until(lambda: cluster.node_ips() == [HEAD_IP, NODE_IP], "both Ray nodes", 90)
        yield cluster
    finally:
        try:
            ray.shutdown()
        finally:
            for proc in reversed(groups):
                _stop_group(proc)
            shutil.rmtree(workdir, ignore_errors=True)


def _short_tempdir() -> str:
    """A new directory for the cluster's files, on a short path: Ray's unix sockets live under
    it (``session_<time>_<pid>/sockets/plasma_store``) and an AF_UNIX path holds at most 107
    bytes, which a long ``$TMPDIR`` (like the per-job ones of ``CI_PARALLEL=1 bash .ci/run``)
    exceeds: the nodes then never start."""
    base = tempfile.gettempdir()
    if len(base) > 16 and os.path.isdir("/tmp"):
        base = "/tmp"
    return tempfile.mkdtemp(prefix="atdata-ray-", dir=base)


def _started(log: Path) -> bool:
    """``ray start`` says so once its node is up (listening alone is too early to connect)."""
    try:
        return b"This command will now block forever" in log.read_bytes()
    except OSError:
        return False
