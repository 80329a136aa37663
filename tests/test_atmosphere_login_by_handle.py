"""``AtmosphereSession.login(handle, password)`` with no PDS URL: the handle resolves to a DID
(``com.atproto.identity.resolveHandle`` at the configured resolver), the DID document (from the
PLC directory) names the PDS, and the PDS must answer for that DID. Against the local PDS
harness and its in-memory PLC directory."""

import json
from typing import Any

import pytest

from atdata.atmosphere import AtmosphereSession, Resolver
from atdata.errors import AuthenticationError
from atmosphere_helpers import loopback_only, new_account  # noqa: F401 - autouse guard
from http_server import FileServer
from services import PDS_TEST_PASSWORD


def test_login_with_a_handle_alone_finds_the_pds_through_the_environment(
    pds: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    handle, did = new_account(pds, "h")
    monkeypatch.setenv("ATDATA_PLC_URL", pds["plc"])
    monkeypatch.setenv("ATDATA_HANDLE_RESOLVER", pds["pds"])
    session = AtmosphereSession.login(f"@{handle}", PDS_TEST_PASSWORD)
    assert (session.did, session.handle) == (did, handle)
    assert session.pds_url == Resolver(plc_url=pds["plc"]).pds_endpoint(did)
    got = session.query("com.atproto.server.getSession", {}, "checking")
    assert got["did"] == did


def test_login_with_a_did_and_an_explicit_resolver(pds: dict[str, Any]) -> None:
    handle, did = new_account(pds, "h")
    session = AtmosphereSession.login(did, PDS_TEST_PASSWORD, resolver=Resolver(plc_url=pds["plc"]))
    assert (session.did, session.handle) == (did, handle)
    with Resolver(plc_url=pds["plc"], handle_resolver_pds=pds["pds"]).activate():
        again = AtmosphereSession.login(handle, PDS_TEST_PASSWORD)  # the current resolver
    assert again.did == did


def test_a_resolver_that_lies_about_the_handle_is_refused(
    pds: dict[str, Any], http_server: FileServer
) -> None:
    _, victim_did = new_account(pds, "h")
    (http_server.root / "xrpc").mkdir()
    (http_server.root / "xrpc" / "com.atproto.identity.resolveHandle").write_text(
        json.dumps({"did": victim_did})
    )
    lying = Resolver(plc_url=pds["plc"], handle_resolver_pds=http_server.url)
    with pytest.raises(AuthenticationError, match="cannot find the account's PDS"):
        AtmosphereSession.login("mallory.test", PDS_TEST_PASSWORD, resolver=lying)


def test_a_wrong_password_and_an_unknown_handle_are_authentication_errors(
    pds: dict[str, Any],
) -> None:
    handle, _ = new_account(pds, "h")
    resolver = Resolver(plc_url=pds["plc"], handle_resolver_pds=pds["pds"])
    with pytest.raises(AuthenticationError):
        AtmosphereSession.login(handle, "not-the-password", resolver=resolver)
    with pytest.raises(AuthenticationError, match="cannot find"):
        AtmosphereSession.login("nobody-here.test", PDS_TEST_PASSWORD, resolver=resolver)
    with pytest.raises(AuthenticationError, match="not both"):
        AtmosphereSession.login(pds["pds"], handle, PDS_TEST_PASSWORD, resolver=resolver)  # type: ignore[call-overload]


def test_the_cli_logs_in_with_a_handle_alone(
    pds: dict[str, Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from atdata.cli.app import app

    handle, did = new_account(pds, "h")
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    env = {
        "ATDATA_APP_PASSWORD": PDS_TEST_PASSWORD,
        "ATDATA_PLC_URL": pds["plc"],
        "ATDATA_HANDLE_RESOLVER": pds["pds"],
    }
    result = CliRunner().invoke(app, ["login", handle], env=env)
    assert result.exit_code == 0, result.output
    pds_of_did = Resolver(plc_url=pds["plc"]).pds_endpoint(did)  # as the DID document says
    assert f"@{handle} ({did}) on {pds_of_did}" in " ".join(result.stdout.split())
    who = CliRunner().invoke(app, ["whoami", "--json"], env=env)
    assert who.exit_code == 0 and did in who.stdout
