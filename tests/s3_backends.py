"""One fixture, ``s3``, that runs a test against every real S3 server we have on loopback.

``moto`` (in-process, lenient, reset per test) and ``rclone`` (``rclone serve s3``: checks
signatures, needs the ``when_required`` checksum settings). Each test gets a fresh bucket,
a boto3 client for setup and inspection, and the :class:`S3Config` atdata should use.
Load it in a test module with ``pytest_plugins = ["s3_backends"]``.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from atdata.sources._retry import RetryPolicy
from atdata.sources.s3 import S3Config
from services import rclone_s3

__all__ = ["S3Backend", "make_s3_backend", "rclone_s3", "s3"]

FAST = RetryPolicy(attempts=4, initial_delay=0.01, max_delay=0.05)


@dataclass
class S3Backend:
    name: str
    endpoint: str
    client: Any
    config: S3Config
    bucket: str

    @property
    def port(self) -> int:
        port = urllib.parse.urlsplit(self.endpoint).port
        assert port is not None
        return port

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def uploads(self) -> list[dict[str, Any]]:
        try:
            listed = self.client.list_multipart_uploads(Bucket=self.bucket)
        except self.client.exceptions.NoSuchUpload:
            return []  # rclone serve s3 answers so while no upload was ever started in the bucket
        return listed.get("Uploads", []) or []


@pytest.fixture(params=["moto", "rclone"])
def s3(request: pytest.FixtureRequest) -> S3Backend:
    return make_s3_backend(request, request.param)


def make_s3_backend(request: pytest.FixtureRequest, name: str) -> S3Backend:
    """A fresh bucket on the S3 server ``name`` ("moto" or "rclone"), for a fixture of yours."""
    pytest.importorskip("boto3", reason="boto3 missing: uv sync --all-extras")
    if name == "moto":
        endpoint: str = request.getfixturevalue("s3_endpoint")
        client = request.getfixturevalue("s3_client")  # resets moto's state
        config = S3Config(
            endpoint_url=endpoint,
            region="us-east-1",
            access_key_id=os.environ.get("ATDATA_TEST_S3_KEY", "testing"),
            secret_access_key=os.environ.get("ATDATA_TEST_S3_SECRET", "testing"),
            retry=FAST,
        )
    else:
        info = request.getfixturevalue("rclone_s3")
        endpoint = info["endpoint"]
        config = S3Config(
            endpoint_url=endpoint,
            region="us-east-1",
            access_key_id=info["key"],
            secret_access_key=info["secret"],
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retry=FAST,
        )
        client = config.client()
    bucket = f"atdata-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return S3Backend(name, endpoint, client, config, bucket)
