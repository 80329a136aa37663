"""boto3 clients follow the AWS settings of the moment: one process reads the same
``s3://`` URL from two real S3 servers (``rclone serve s3``, each with its own keys) by changing
``AWS_ENDPOINT_URL_S3`` and the keys in its environment between reads; unchanged settings keep
sharing one client."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from atdata.errors import SourceError
from atdata.sources import open_source
from atdata.sources.s3 import S3Config, S3Source
from services import rclone_s3_server

pytestmark = pytest.mark.services
pytest.importorskip("boto3", reason="boto3 missing: uv sync --all-extras")

BUCKET, KEY = "settings", "shards/one.tar"
URL = f"s3://{BUCKET}/{KEY}"


@pytest.fixture
def servers() -> Iterator[list[dict[str, str]]]:
    """Two rclone S3 servers with different keys, each holding URL with its own bytes."""
    with (
        rclone_s3_server("key-one", "secret-one") as one,
        rclone_s3_server("key-two", "secret-two") as two,
    ):
        for info in (one, two):
            path = Path(info["root"], BUCKET, KEY)
            path.parent.mkdir(parents=True)
            path.write_bytes(f"served by {info['key']}".encode())
        yield [one, two]


@pytest.fixture(autouse=True)
def _aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what the test sets: no AWS variables or files of the user's."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name in ("AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION"):
        monkeypatch.setenv(name, "when_required")  # rclone's needs


def _point_at(monkeypatch: pytest.MonkeyPatch, info: dict[str, str]) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", info["endpoint"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", info["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", info["secret"])


def _read(source: object) -> bytes:
    assert isinstance(source, S3Source)
    with source.open() as stream:
        return stream.read()


def test_a_changed_endpoint_in_the_environment_reaches_the_next_read(
    servers: list[dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = servers
    _point_at(monkeypatch, one)
    assert _read(open_source(URL)) == b"served by key-one"
    made_before = open_source(URL)
    _point_at(monkeypatch, two)
    assert _read(open_source(URL)) == b"served by key-two"
    # A source made before the change goes where the settings now say, too.
    assert _read(made_before) == b"served by key-two"
    _point_at(monkeypatch, one)
    assert _read(made_before) == b"served by key-one"


def test_unchanged_settings_share_a_client_and_a_changed_secret_does_not(
    servers: list[dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, _ = servers
    _point_at(monkeypatch, one)
    first = S3Config().client()
    assert S3Config().client() is first
    assert _read(open_source(URL)) == b"served by key-one"
    # Only the secret changes: a new client, which signs with it (and rclone refuses it).
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    assert S3Config().client() is not first
    with pytest.raises(SourceError):
        _read(open_source(URL))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", one["secret"])
    assert _read(open_source(URL)) == b"served by key-one"
