"""Shared pieces of the atmosphere tests (imported by test_atmosphere_*.py; tests/ has no
__init__.py, so they import it as a top-level module, like ``services``)."""

import ipaddress
import socket
from typing import Any

import pytest


def _loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any attempt to resolve or connect to a non-loopback address from this process."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(str(address[0])):
            raise OSError(f"test guard: refusing to connect to {address!r}")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _loopback(str(host)):
            raise socket.gaierror(f"test guard: refusing to look up {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def new_account(pds: dict[str, Any], prefix: str = "m") -> tuple[str, str]:
    """A fresh account on the local PDS (``pds`` fixture): its handle and DID."""
    import os

    from atproto import Client, models

    from services import PDS_TEST_PASSWORD

    handle = f"{prefix}{os.urandom(5).hex()}.test"
    out = Client(base_url=pds["pds"]).com.atproto.server.create_account(
        models.ComAtprotoServerCreateAccount.Data(
            handle=handle, email=f"{handle}@example.test", password=PDS_TEST_PASSWORD
        )
    )
    return handle, out.did


def new_account_session(pds: dict[str, Any], prefix: str = "m") -> Any:
    """A fresh account on the local PDS (``pds`` fixture) and an AtmosphereSession logged in to it."""
    from atdata.atmosphere import AtmosphereSession
    from services import PDS_TEST_PASSWORD

    handle, _ = new_account(pds, prefix)
    return AtmosphereSession.login(pds["pds"], handle, PDS_TEST_PASSWORD)
