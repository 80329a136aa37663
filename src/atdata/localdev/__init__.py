"""``atdata local up|down|status``: the services a developer needs on one machine for the
non-embedded setups, from binaries found on the machine.

:func:`up` starts Redis (append-only persistence), PostgreSQL and an S3-compatible server
(``rclone serve s3``), optionally the ATProto PDS test harness and the discovery indexer
following it (``atdata indexer``), each on 127.0.0.1 on a free port
with a generated password or key, with its data under ``$ATDATA_HOME/local``; it records them
in ``$ATDATA_HOME/local/state.json`` (mode 0600: it holds the credentials). :func:`exports`
gives the shell lines that point atdata at them (``ATDATA_INDEX_URL``, ``AWS_ENDPOINT_URL_S3``
...). :func:`status` checks each one; :func:`down` stops them. Running ``up`` again starts only
what is not running; the data stays between ``down`` and ``up``.
"""

import importlib.util
import json
import os
import shlex
from pathlib import Path

from .._home import atdata_home
from .services import (
    LocalDevError,
    Service,
    healthy,
    start_indexer,
    start_pds,
    start_postgres,
    start_redis,
    start_s3,
    stop,
)

__all__ = [
    "LocalDevError",
    "Service",
    "down",
    "exports",
    "indexer_available",
    "local_root",
    "status",
    "up",
]

_STARTERS = {
    "redis": start_redis,
    "postgres": start_postgres,
    "s3": start_s3,
    "pds": start_pds,
}


def local_root(home: str | os.PathLike[str] | None = None) -> Path:
    """``<ATDATA_HOME>/local``: the services' data and state file."""
    return Path(home).expanduser() / "local" if home is not None else atdata_home() / "local"


def _state_file(root: Path) -> Path:
    return root / "state.json"


def _read(root: Path) -> dict[str, Service]:
    try:
        raw = json.loads(_state_file(root).read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise LocalDevError(f"{_state_file(root)} is not a state file of atdata local") from None
    return {name: Service.from_dict(d) for name, d in raw.get("services", {}).items()}


def _write(root: Path, services: dict[str, Service]) -> None:
    path = _state_file(root)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"services": {n: s.to_dict() for n, s in services.items()}}, out, indent=1)
    os.replace(tmp, path)


def indexer_available() -> bool:
    """Whether the discovery indexer (``atdata.discovery``) is installed."""
    return importlib.util.find_spec("atdata.discovery") is not None


def up(
    home: str | os.PathLike[str] | None = None,
    *,
    with_pds: bool = False,
    with_indexer: bool = False,
) -> dict[str, Service]:
    """Start every service not already running; the services, by name. ``with_indexer``
    starts the discovery indexer following the local PDS (so it implies ``with_pds``)."""
    if with_indexer and not indexer_available():
        raise LocalDevError("the discovery indexer (atdata.discovery) is not installed")
    root = local_root(home)
    root.mkdir(parents=True, exist_ok=True, mode=0o711)
    running = {n: s for n, s in _read(root).items() if healthy(s)[0]}
    try:
        last = {str(k): int(v) for k, v in json.loads((root / "ports.json").read_text()).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        last = {}
    wanted = ["redis", "postgres", "s3"] + (["pds"] if with_pds or with_indexer else [])
    try:
        for name in wanted:
            if name not in running:
                running[name] = _STARTERS[name](root, last.get(name))
                _write(root, running)
        if with_indexer and "indexer" not in running:
            running["indexer"] = start_indexer(root, running["pds"], last.get("indexer"))
    finally:
        _write(root, running)
        (root / "ports.json").write_text(json.dumps({n: s.port for n, s in running.items()}))
    return running


def status(home: str | os.PathLike[str] | None = None) -> list[tuple[Service, bool, str]]:
    """Each recorded service with (healthy, a word on its state)."""
    return [(s, *healthy(s)) for s in _read(local_root(home)).values()]


def down(home: str | os.PathLike[str] | None = None) -> list[str]:
    """Stop every recorded service; the names of those stopped. The data stays."""
    root = local_root(home)
    services = _read(root)
    for svc in services.values():
        stop(svc)
    _state_file(root).unlink(missing_ok=True)
    return list(services)


def exports(services: dict[str, Service]) -> list[str]:
    """``export NAME=value`` lines pointing atdata (and boto3/s5cmd) at the services."""
    lines: list[str] = []

    def put(name: str, value: str) -> None:
        lines.append(f"export {name}={shlex.quote(value)}")

    if "postgres" in services:
        put("ATDATA_INDEX_URL", services["postgres"].url)
    elif "redis" in services:
        put("ATDATA_INDEX_URL", services["redis"].url)
    if "redis" in services:
        put("ATDATA_REDIS_URL", services["redis"].url)
    if "postgres" in services:
        put("ATDATA_POSTGRES_DSN", services["postgres"].url)
    if "s3" in services:
        s3 = services["s3"]
        put("AWS_ENDPOINT_URL_S3", s3.url)
        put("AWS_ACCESS_KEY_ID", str(s3.info["key"]))
        put("AWS_SECRET_ACCESS_KEY", str(s3.info["secret"]))
        put("AWS_DEFAULT_REGION", "us-east-1")
        # rclone serve s3 does not take the newer default checksums of boto3
        put("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
        put("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
        put("ATDATA_S3_BUCKET", str(s3.info["bucket"]))
    if "pds" in services:
        pds = services["pds"]
        put("ATDATA_PDS_URL", pds.url)
        put("ATDATA_HANDLE_RESOLVER", pds.url)
        if pds.info.get("plc"):
            put("ATDATA_PLC_URL", str(pds.info["plc"]))
    if "indexer" in services:
        put("ATDATA_INDEXER_URL", services["indexer"].url)
    return lines
