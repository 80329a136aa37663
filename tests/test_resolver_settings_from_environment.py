"""``ATDATA_PLC_URL`` and ``ATDATA_HANDLE_RESOLVER`` steer the Python API as they steer the CLI.

One function reads them (``atdata.atmosphere.resolve.resolution_settings``); ``load_dataset``
of ``@handle/name`` and ``at://`` references uses them when no resolver is given or current.
"""

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import atdata
from atdata.atmosphere import AtmosphereSession, Resolver, publish_dataset
from atdata.atmosphere.resolve import (
    HANDLE_RESOLVER_ENV,
    PLC_URL_ENV,
    PUBLIC_HANDLE_RESOLVER,
    PUBLIC_PLC_URL,
    resolution_settings,
)
from atdata.cli.account import HANDLE_RESOLVER_ENV as CLI_HANDLE_ENV
from atdata.cli.account import PLC_ENV as CLI_PLC_ENV
from atmosphere_helpers import loopback_only  # noqa: F401 - autouse guard
from services import PDS_TEST_PASSWORD


@atdata.packable
class Reading:
    values: atdata.NDArray[np.float32]
    station: int


def test_the_environment_wins_then_the_given_values_then_the_public_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (CLI_PLC_ENV, CLI_HANDLE_ENV) == (PLC_URL_ENV, HANDLE_RESOLVER_ENV)
    monkeypatch.delenv(PLC_URL_ENV, raising=False)
    monkeypatch.delenv(HANDLE_RESOLVER_ENV, raising=False)
    assert resolution_settings() == (PUBLIC_PLC_URL, PUBLIC_HANDLE_RESOLVER)
    assert resolution_settings("http://localhost:1", "http://localhost:2") == (
        "http://localhost:1",
        "http://localhost:2",
    )
    monkeypatch.setenv(PLC_URL_ENV, "http://localhost:3")
    monkeypatch.setenv(HANDLE_RESOLVER_ENV, "")  # empty counts as unset
    assert resolution_settings("http://localhost:1", "http://localhost:2") == (
        "http://localhost:3",
        "http://localhost:2",
    )
    monkeypatch.setenv(HANDLE_RESOLVER_ENV, "http://localhost:4")
    resolver = Resolver.default()
    assert (resolver.plc_url, resolver.handle_resolver_pds) == (
        "http://localhost:3",
        "http://localhost:4",
    )
    resolver.close()


@pytest.mark.services
def test_load_dataset_resolves_with_the_services_the_environment_names(
    pds: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No resolver is passed or activated: without the variables this would ask the public
    network (which the loopback guard refuses)."""
    from atproto import Client, models

    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ATDATA_INDEX_URL", raising=False)
    handle = f"env{os.urandom(5).hex()}.test"
    Client(base_url=pds["pds"]).com.atproto.server.create_account(
        models.ComAtprotoServerCreateAccount.Data(
            handle=handle, email=f"{handle}@example.test", password=PDS_TEST_PASSWORD
        )
    )
    session = AtmosphereSession.login(pds["pds"], handle, PDS_TEST_PASSWORD)
    with atdata.Index() as index:
        index.write([Reading(np.ones(3, np.float32) * i, i) for i in range(5)], "weather")
        published = publish_dataset(index, "weather", to=session)
    monkeypatch.setenv(PLC_URL_ENV, pds["plc"])
    monkeypatch.setenv(HANDLE_RESOLVER_ENV, pds["pds"])
    by_name = atdata.load_dataset(f"@{handle}/weather", split="train")
    by_uri = atdata.load_dataset(str(published.uri), Reading, split="train")
    assert sorted(int(r.station) for r in by_name) == list(range(5))
    assert sorted(r.station for r in by_uri) == list(range(5))


def test_an_invalid_handle_is_reported_as_one_not_as_a_missing_file() -> None:
    """``@foo/bar`` is an atmosphere reference (the CLI and load_dataset agree): loading it says
    the handle is invalid, not that no shard file is called ``@foo/bar``."""
    from atdata.errors import AtmosphereError

    with pytest.raises(AtmosphereError, match="'foo' is not a valid handle"):
        atdata.load_dataset("@foo/bar")
