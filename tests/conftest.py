"""Shared test configuration. Service fixtures live in services.py (real servers on loopback)."""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from atdata.atmosphere import Resolver


def _load_test_infra_env(path: Path) -> None:
    """Export the ``export KEY=value`` lines of .test-infra.env; existing variables win."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["export"]:
            words = words[1:]
        for word in words:
            key, sep, value = word.partition("=")
            if sep and key:
                os.environ.setdefault(key, value)


_load_test_infra_env(Path(__file__).resolve().parent.parent / ".test-infra.env")

# Tests never write to the user's ~/.atdata (e.g. the cache of scanned offset indexes): a test
# that cares about ATDATA_HOME sets its own.
if "ATDATA_HOME" not in os.environ:
    os.environ["ATDATA_HOME"] = tempfile.mkdtemp(prefix="atdata-test-home-")

# atdata's own pytest fixtures for users' suites (tmp_index, tmp_dataset, make_samples), used here too
pytest_plugins = ["atdata.testing"]

import pytest  # noqa: E402

from services import (  # noqa: E402
    http_server,
    pds,
    pds_account,
    postgres_dsn,
    redis_url,
    s3_client,
    s3_endpoint,
)

__all__ = [
    "home",
    "private_verify_memo",
    "resolver",
    "http_server",
    "pds",
    "pds_account",
    "postgres_dsn",
    "redis_url",
    "s3_client",
    "s3_endpoint",
]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``ATDATA_HOME`` (``tmp_path / "home"``), no ``ATDATA_INDEX_URL``, and
    ``tmp_path`` as the working directory (a module may define its own ``home``)."""
    home = tmp_path / "home"
    monkeypatch.setenv("ATDATA_HOME", str(home))
    monkeypatch.delenv("ATDATA_INDEX_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def private_verify_memo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No shared shard cache and a verification memo of this test's own."""
    monkeypatch.delenv("ATDATA_CACHE_DIR", raising=False)
    monkeypatch.setenv("ATDATA_VERIFY_MEMO", str(tmp_path / "memo.sqlite"))


@pytest.fixture
def resolver(pds: dict[str, Any]) -> Iterator[Resolver]:
    """An atproto resolver that knows only the loopback PLC directory and PDS."""
    from atdata.atmosphere import Resolver

    r = Resolver(plc_url=pds["plc"], handle_resolver_pds=pds["pds"])
    yield r
    r.close()
