"""The atmosphere commands against a real local PDS and PLC directory: ``atdata login``,
``whoami``, ``publish``, ``ls @handle``, ``inspect at://...``, ``preview`` / ``verify
@handle/name`` and ``logout``; tampered blobs and hostile records exit 1 with a clear message.

Each test gets its own ``$ATDATA_HOME`` and fresh accounts. ``ATDATA_PLC_URL`` points at the
local PLC directory and handles resolve through the logged-in PDS; an autouse guard refuses
every connection and name lookup that is not loopback.
"""

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from numpy.typing import NDArray
from typer.testing import CliRunner

from atdata.atmosphere import AtmosphereClient, AtmosphereSession, LabelRecord, Resolver
from atdata.atmosphere.credentials import (
    PASSWORD_ENV,
    load_login,
    open_session,
    resolution_settings,
    session_path,
)
from atdata.cli.account import HANDLE_RESOLVER_ENV, PLC_ENV
from atdata.cli.app import app
from atdata.errors import AuthenticationError
from atdata.index import Index
from atdata.sample import packable
from atdata.schema import Shape
from atmosphere_helpers import loopback_only  # noqa: F401 - autouse guard
from fresh_env import fresh_env
from services import PDS_TEST_PASSWORD

pytestmark = pytest.mark.services

runner = CliRunner()


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def environment(
    pds: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """A clean ATDATA_* environment: home in tmp, the local PLC directory, no password."""
    for key in list(os.environ):
        if key.startswith("ATDATA_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(PLC_ENV, pds["plc"])
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)
    return pds


@pytest.fixture
def new_handle(pds: dict[str, Any]) -> Callable[[], str]:
    """Create an account on the local PDS; its handle (password PDS_TEST_PASSWORD)."""
    from atproto import Client, models

    def make() -> str:
        handle = f"c{os.urandom(5).hex()}.test"
        Client(base_url=pds["pds"]).com.atproto.server.create_account(
            models.ComAtprotoServerCreateAccount.Data(
                handle=handle, email=f"{handle}@example.test", password=PDS_TEST_PASSWORD
            )
        )
        return handle

    return make


@packable
class Digit:
    """A small image with its label."""

    image: Annotated[NDArray[np.uint8], Shape(8, 8)]
    label: int


def _digits(n: int, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [Digit(rng.integers(0, 255, (8, 8), dtype=np.uint8), i % 10) for i in range(n)]


def use_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("ATDATA_HOME", str(home))


def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), input=input, env=env)


def login(pds: dict[str, Any], handle: str, *extra: str) -> Any:
    result = invoke("login", pds["pds"], handle, *extra, env={PASSWORD_ENV: PDS_TEST_PASSWORD})
    assert result.exit_code == 0, result.output
    return result


def publish_json(*args: str) -> dict[str, Any]:
    result = invoke("publish", *args, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _blob_file(pds: dict[str, Any], did: str, cid: str) -> Path:
    path = Path(pds["dataDir"]) / "blobs" / did / cid
    assert path.is_file(), f"the harness keeps blobs at <dataDir>/blobs/<did>/<cid>: {path}"
    return path


# --------------------------------------------------------------------------------- the loop
def test_login_publish_ls_inspect_then_another_account_previews_and_verifies(
    pds: dict[str, Any],
    new_handle: Callable[[], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob = new_handle(), new_handle()
    samples = _digits(50)
    with Index() as index:  # the default index, in $ATDATA_HOME
        index.write(samples, "team/digits", maxcount=20, description="random digits")

    logged_in = login(pds, alice)
    assert f"Logged in as @{alice}" in logged_in.stdout
    path = session_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["session"]["handle"] == alice
    assert PDS_TEST_PASSWORD not in path.read_text()
    who = invoke("whoami", "--json")
    assert who.exit_code == 0, who.output
    assert json.loads(who.stdout)["handle"] == alice
    assert json.loads(who.stdout)["did"] == stored["session"]["did"]
    assert f"@{alice}" in invoke("whoami").stdout
    for secret in (
        PDS_TEST_PASSWORD,
        stored["session"]["accessJwt"],
        stored["session"]["refreshJwt"],
    ):
        assert secret not in logged_in.output

    published = publish_json("team/digits")
    assert published["created"] is True
    assert published["ref"] == f"@{alice}/team/digits@1"
    assert (published["storage"], published["shards"], published["samples"]) == ("blob", 3, 50)
    again = publish_json("@local/team/digits@1")
    assert again["created"] is False and again["entry"] == published["entry"]
    human = invoke("publish", "team/digits")
    assert human.exit_code == 0 and "Already published" in human.stdout

    listed = invoke("ls", f"@{alice}", "--json")
    assert listed.exit_code == 0, listed.output
    account = json.loads(listed.stdout)
    assert account["did"] == stored["session"]["did"]
    (dataset,) = account["datasets"]
    assert dataset["name"] == "team/digits" and dataset["uri"] == published["entry"]
    assert dataset["labels"] == ["team/digits@1"] and dataset["samples"] == 50
    assert [s["name"] for s in account["schemas"]] == ["Digit"]
    assert [lab["version"] for lab in account["labels"]] == ["1"]
    assert account["lenses"] == [] and account["skipped"] == []
    table = invoke("ls", f"@{alice}")
    assert (
        table.exit_code == 0 and "team/digits@1" in table.stdout and "Digit@1.0.0" in table.stdout
    )

    inspected = invoke("inspect", published["entry"], "--json")
    assert inspected.exit_code == 0, inspected.output
    info = json.loads(inspected.stdout)
    assert info["name"] == "team/digits" and info["count"] == 50
    assert [f["name"] for f in info["schema"]["fields"]] == ["image", "label"]
    assert len(info["shards"]) == 3
    assert all(s["cid"].startswith("bafkrei") and len(s["sha256"]) == 64 for s in info["shards"])
    text = invoke("inspect", published["entry"])
    assert text.exit_code == 0
    assert "Digit@1.0.0" in text.stdout and "array uint8 (8, 8)" in text.stdout
    assert "3 (blob)" in text.stdout and "random digits" in text.stdout
    schema = invoke("inspect", published["schema"], "--json")
    assert schema.exit_code == 0 and json.loads(schema.stdout)["name"] == "Digit"

    # someone else, logged in on their own, loads it by handle and name
    use_home(monkeypatch, tmp_path / "bob")
    monkeypatch.delenv(PLC_ENV)  # remembered from login this time
    prompted = invoke(
        "login", pds["pds"], bob, "--plc-url", pds["plc"], input=f"{PDS_TEST_PASSWORD}\n"
    )
    assert prompted.exit_code == 0, prompted.output
    assert PDS_TEST_PASSWORD not in prompted.output
    preview = invoke("preview", f"@{alice}/team/digits", "-n", "25", "--json")
    assert preview.exit_code == 0, preview.output
    rows = json.loads(preview.stdout)
    assert [r["label"] for r in rows] == [s.label for s in samples[:25]]  # across shards 1 and 2
    assert rows[0]["image"] == {"dtype": "uint8", "shape": [8, 8]}
    table = invoke("preview", f"@{alice}/team/digits@1", "-n", "3")
    assert table.exit_code == 0 and "uint8 (8, 8)" in table.stdout

    verified = invoke("verify", f"@{alice}/team/digits")
    assert verified.exit_code == 0, verified.output
    assert f"3 shard(s) of @{alice}/team/digits match their record" in verified.stdout

    from atdata.dataset_refs import load_dataset

    with Resolver(plc_url=pds["plc"], handle_resolver_pds=pds["pds"]).activate():
        loaded = list(load_dataset(f"@{alice}/team/digits", split="train"))
    assert [int(s.label) for s in loaded] == [s.label for s in samples]

    saved = load_login(required=True)
    assert saved is not None
    out = invoke("logout")
    assert out.exit_code == 0 and f"Logged out @{bob}" in out.stdout
    assert not session_path().exists()
    with pytest.raises(AuthenticationError):
        AtmosphereSession.restore(saved.export).refresh()  # the refresh token was revoked
    assert invoke("logout").stdout.strip() == "not logged in"


def test_ls_follows_cursors_to_the_end(
    pds: dict[str, Any], new_handle: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = new_handle()
    with Index() as index:
        index.write(_digits(5), "digits")
    login(pds, handle)
    entry = publish_json("digits")["entry"]
    login_info = load_login(required=True)
    assert login_info is not None
    session = open_session(login_info)
    client = AtmosphereClient(session)
    for i in range(2, 7):
        client.publish(LabelRecord("digits", entry, str(i)))

    real = AtmosphereClient.records
    pages: list[str] = []

    def small_pages(self: AtmosphereClient, repo: str, collection: str, **_: Any) -> Any:
        pages.append(collection)
        return real(self, repo, collection, page_size=2)

    monkeypatch.setattr(AtmosphereClient, "records", small_pages)
    result = invoke("ls", f"@{handle}", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert sorted(lab["version"] for lab in data["labels"]) == ["1", "2", "3", "4", "5", "6"]
    assert len(data["datasets"][0]["labels"]) == 6


# ------------------------------------------------------------------------------- resolution
def test_resolution_settings_come_from_env_then_login_then_public_defaults(
    pds: dict[str, Any], new_handle: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from atdata.atmosphere import PUBLIC_HANDLE_RESOLVER, PUBLIC_PLC_URL

    monkeypatch.delenv(PLC_ENV)
    assert resolution_settings(None) == (PUBLIC_PLC_URL, PUBLIC_HANDLE_RESOLVER)
    handle = new_handle()
    login(pds, handle, "--plc-url", pds["plc"])
    stored = load_login(required=True)
    assert resolution_settings(stored) == (pds["plc"], pds["pds"])
    monkeypatch.setenv(PLC_ENV, "http://localhost:9")
    monkeypatch.setenv(HANDLE_RESOLVER_ENV, "http://127.0.0.1:9")
    assert resolution_settings(stored) == ("http://localhost:9", "http://127.0.0.1:9")

    # the setting is really used: a handle resolver that does not answer is a clear error
    monkeypatch.delenv(PLC_ENV)
    failed = invoke("ls", f"@{handle}")
    assert failed.exit_code == 1
    assert "127.0.0.1:9" in failed.stderr and failed.stderr.startswith("error:")
    monkeypatch.delenv(HANDLE_RESOLVER_ENV)
    assert invoke("ls", f"@{handle}").exit_code == 0


def test_refreshed_tokens_are_written_back_privately(
    pds: dict[str, Any], new_handle: Callable[[], str]
) -> None:
    login(pds, new_handle())
    before = load_login(required=True)
    assert before is not None
    open_session(before).refresh()
    after = load_login(required=True)
    assert after is not None
    assert json.loads(after.export)["refreshJwt"] != json.loads(before.export)["refreshJwt"]
    assert stat.S_IMODE(session_path().stat().st_mode) == 0o600


# ---------------------------------------------------------------------------- failures: exit 1
def test_a_wrong_password_exits_1_without_echoing_it_or_saving_anything(
    pds: dict[str, Any], new_handle: Callable[[], str], tmp_path: Path
) -> None:
    handle = new_handle()
    secret = "not-the-password-8c1f"
    result = invoke("login", pds["pds"], handle, "--password", secret)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: login as") and "Traceback" not in result.output
    assert secret not in result.output
    assert not session_path().exists()

    # the installed script, too
    script = Path(sys.executable).with_name("atdata")
    env = fresh_env(tmp_path / "script", **{PASSWORD_ENV: secret})
    done = subprocess.run(
        [str(script), "login", pds["pds"], handle],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1 and secret not in done.stdout + done.stderr


def test_commands_that_need_a_login_or_a_dataset_say_so(
    pds: dict[str, Any], new_handle: Callable[[], str]
) -> None:
    with Index() as index:
        index.write(_digits(3), "digits")
    no_login = invoke("publish", "digits")
    assert no_login.exit_code == 1 and "not logged in" in no_login.stderr
    nobody = invoke("whoami")
    assert nobody.exit_code == 1 and "not logged in" in nobody.stderr
    handle = new_handle()
    login(pds, handle)
    missing = invoke("publish", "nope")
    assert missing.exit_code == 1 and "no dataset 'nope'" in missing.stderr
    nothing = invoke("preview", f"@{handle}/nope")
    assert nothing.exit_code == 1 and "has published no dataset named 'nope'" in nothing.stderr
    for args in (["preview", f"@{handle}"], ["verify", f"@{handle}"]):
        wrong = invoke(*args)
        assert wrong.exit_code == 1 and "takes a dataset" in wrong.stderr, args
    assert invoke("ls", f"@{handle}/digits").exit_code == 1
    bad_handle = invoke("inspect", "@not_a_handle/x")
    assert bad_handle.exit_code == 1 and "not a valid handle" in bad_handle.stderr
    empty = invoke("ls", f"@{handle}")
    assert empty.exit_code == 0 and "nothing published yet" in empty.stdout
    refused = invoke("publish", "digits", "--storage", "urls")
    assert refused.exit_code == 1 and "storage='urls'" in refused.stderr


def test_a_blob_tampered_on_the_pds_fails_verify_and_preview_with_exit_1(
    pds: dict[str, Any], new_handle: Callable[[], str]
) -> None:
    handle = new_handle()
    with Index() as index:
        index.write(_digits(30), "digits", maxcount=10)
    login(pds, handle)
    entry = publish_json("digits")["entry"]
    info = json.loads(invoke("inspect", entry, "--json").stdout)
    victim = info["shards"][1]["cid"]
    blob = _blob_file(pds, info["did"], victim)
    data = bytearray(blob.read_bytes())
    data[700] ^= 0xFF
    blob.write_bytes(bytes(data))

    verify = invoke("verify", f"@{handle}/digits")
    assert verify.exit_code == 1
    assert "1 of 3 shard(s)" in verify.stdout and f"do not match CID {victim}" in verify.stdout
    as_json = invoke("verify", f"@{handle}/digits", "--json")
    assert as_json.exit_code == 1
    problems = json.loads(as_json.stdout)["problems"]
    assert [victim in p["url"] for p in problems] == [True]

    first = invoke("preview", f"@{handle}/digits", "-n", "5")  # the first shard is intact
    assert first.exit_code == 0
    preview = invoke("preview", f"@{handle}/digits", "-n", "15")
    assert preview.exit_code == 1 and preview.stdout == ""
    assert preview.stderr.startswith("error: blob bytes") and "tampered" in preview.stderr


def test_hostile_records_exit_1_on_inspect_and_are_skipped_by_ls(
    pds: dict[str, Any], new_handle: Callable[[], str], tmp_path: Path
) -> None:
    handle = new_handle()
    with Index() as index:
        index.write(_digits(5), "fine")
    login(pds, handle)
    good = publish_json("fine")
    marker = tmp_path / "pwned"
    stored = load_login(required=True)
    assert stored is not None
    client = AtmosphereClient(open_session(stored))
    record = client.get_record(good["entry"]).value
    record["name"] = "evil"
    record["storage"] = {
        "$type": "science.alt.dataset.storageHttp",
        "shards": [
            {
                "url": f"pipe:touch {marker}",
                "checksum": {"algorithm": "sha256", "digest": "0" * 64},
            }
        ],
    }
    from atproto import Client, models

    raw = Client(base_url=pds["pds"])  # the SDK: writes what our code would refuse to write
    raw.login(handle, PDS_TEST_PASSWORD, fetch_bsky_profile=False)
    hostile = raw.com.atproto.repo.create_record(
        models.ComAtprotoRepoCreateRecord.Data(
            repo=stored.did, collection="science.alt.dataset.entry", record=record, validate_=False
        )
    ).uri

    for args in (["inspect", hostile], ["preview", hostile], ["verify", hostile]):
        result = invoke(*args)
        assert result.exit_code == 1, args
        assert hostile in result.stderr and "$.storage.shards[0].url" in result.stderr
        assert "Traceback" not in result.output
    by_name = invoke("preview", f"@{handle}/evil")
    assert by_name.exit_code == 1 and "has published no dataset named 'evil'" in by_name.stderr

    listed = invoke("ls", f"@{handle}", "--json")
    assert listed.exit_code == 0
    data = json.loads(listed.stdout)
    assert [d["name"] for d in data["datasets"]] == ["fine"]
    assert len(data["skipped"]) == 1 and hostile in data["skipped"][0]
    assert "warning: skipping invalid record" in listed.stderr
    assert not marker.exists()


def test_a_shard_at_a_url_that_changed_fails_verify_with_exit_1(
    pds: dict[str, Any], new_handle: Callable[[], str], http_server: Any
) -> None:
    from atdata import write_samples

    handle = new_handle()
    infos = write_samples(
        _digits(20), str(http_server.root / "web-%06d.tar"), maxcount=10
    ).shard_infos
    urls = [http_server.url_for(Path(i.url).name) for i in infos]
    with Index() as index:
        index.insert(urls, "web", sample_type=Digit)
    login(pds, handle)
    published = publish_json("web")
    assert published["storage"] == "http"
    assert invoke("verify", f"@{handle}/web").exit_code == 0

    path = Path(infos[0].url)
    data = bytearray(path.read_bytes())
    data[600] ^= 0xFF
    path.write_bytes(bytes(data))
    result = invoke("verify", f"@{handle}/web", "--json")
    assert result.exit_code == 1
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem["url"] == urls[0] and problem["problem"] == "sha256 differs"
    assert problem["expected"] == infos[0].checksum.digest
