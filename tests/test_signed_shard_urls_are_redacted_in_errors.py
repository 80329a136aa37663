"""A signed http(s) shard URL (``?token=``, ``X-Amz-Signature=``, a password in the userinfo)
never shows its secrets in the errors of a failing read: every SourceError, ShardError and
IntegrityError message, its repr, and the warnings of ``on_error="warn"`` show ``***`` instead.
The reads are real ones against the loopback HTTP server."""

from __future__ import annotations

import os
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atdata import Dataset, write_samples
from atdata.errors import AtdataError, IntegrityError, ShardError, SourceError
from atdata.sample import packable
from atdata.sources.http import HttpSource
from http_server import FileServer

SECRETS = ("tok3nSECRET", "s1gnatureSECRET", "passw0rdSECRET")


pytestmark = pytest.mark.usefixtures("private_verify_memo")


@packable
class Row:
    i: int
    v: np.ndarray


def _signed(server: FileServer, name: str) -> str:
    plain = server.url_for(name)
    scheme, rest = plain.split("://", 1)
    return (
        f"{scheme}://reader:{SECRETS[2]}@{rest}?token={SECRETS[0]}"
        f"&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={SECRETS[1]}"
    )


def _assert_hidden(exc: BaseException) -> None:
    """Neither the message, the repr nor the printed traceback (causes included) shows one."""
    shown = f"{exc}\n{exc!r}\n" + "".join(traceback.format_exception(exc))
    assert "***" in shown, shown
    for secret in SECRETS:
        assert secret not in shown, shown


def _write(server: FileServer) -> str:
    rows = [Row(i=i, v=np.full(3, i, dtype=np.float32)) for i in range(6)]
    (info,) = write_samples(rows, str(server.root / "a-%06d.tar"), maxcount=6).shard_infos
    return Path(info.url).name


def test_a_missing_shard(http_server: FileServer) -> None:
    url = _signed(http_server, "missing.tar")
    with pytest.raises(SourceError) as err:
        HttpSource(url).read_range(0, 10)
    _assert_hidden(err.value)
    with pytest.raises(AtdataError) as err2:
        list(Dataset(url, Row).ordered())
    _assert_hidden(err2.value)


def test_a_server_error(http_server: FileServer) -> None:
    name = _write(http_server)
    url = _signed(http_server, name)
    http_server.fail_next(20, status=500)
    with pytest.raises(SourceError) as err:
        with HttpSource(url).open() as stream:
            stream.read()
    _assert_hidden(err.value)


def test_a_shard_failing_its_checksum(http_server: FileServer) -> None:
    url = _signed(http_server, _write(http_server))
    ds: Dataset[Row] = Dataset(url, Row, checksums={url: "0" * 64})
    with pytest.raises(IntegrityError) as err:
        list(ds.ordered())
    _assert_hidden(err.value)
    assert err.value.shard == url  # the attribute keeps the URL as given, for programs
    with pytest.raises(IntegrityError) as err2:
        list(ds.shuffled(seed=0, batch_size=2))
    _assert_hidden(err2.value)


def test_a_corrupt_shard_and_its_skip_warnings(http_server: FileServer) -> None:
    (http_server.root / "junk.tar").write_bytes(os.urandom(3000))
    url = _signed(http_server, "junk.tar")
    with pytest.raises(ShardError) as err:
        list(Dataset(url, Row).ordered())
    _assert_hidden(err.value)
    ds: Dataset[Any] = Dataset(url, Row, on_error="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert list(ds.ordered()) == []
    assert caught
    for w in caught:
        text = str(w.message)
        for secret in SECRETS:
            assert secret not in text, text


def test_warnings_about_a_signed_shards_offset_index(http_server: FileServer) -> None:
    name = _write(http_server)
    (http_server.root / f"{name}.idx").unlink()  # no sidecar: the shard is scanned, with a warning
    url = _signed(http_server, name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert sorted(r.i for r in Dataset(url, Row).shuffled(seed=0)) == list(range(6))
    assert any("no offset index" in str(w.message) for w in caught)
    for w in caught:
        text = str(w.message)
        for secret in SECRETS:
            assert secret not in text, text
