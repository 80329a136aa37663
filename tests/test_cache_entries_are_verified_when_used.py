"""Shard cache entries are named by content digest and checked against it each time they are
used: an entry edited after download, or planted under its name in a shared cache directory,
is found, deleted and downloaded again; an unchanged entry is not re-hashed."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from atdata import Dataset, write_samples
from atdata.errors import AtdataWarning, IntegrityError
from atdata.sample import packable
from atdata.shards.info import ShardInfo
from atdata.sources.cache import ShardCache
from atdata.sources.memo import Fingerprint, default_memo
from http_server import FileServer

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("private_verify_memo")]


@packable
class Row:
    i: int
    v: np.ndarray


def _serve(server: FileServer, first: int = 0) -> tuple[str, ShardInfo]:
    rng = np.random.default_rng(first)
    rows = (Row(i=first + i, v=rng.standard_normal(4000).astype(np.float32)) for i in range(10))
    (info,) = write_samples(rows, str(server.root / f"s{first}-%06d.tar"), maxcount=10).shard_infos
    return server.url_for(Path(info.url).name), info


def _rows(url: str, cache: ShardCache, sha: str) -> list[tuple[int, bytes]]:
    ds: Dataset[Row] = Dataset(url, Row, cache=cache, checksums={url: sha})
    return [(r.i, r.v.tobytes()) for r in ds]


def test_entries_are_named_by_their_sha256(http_server: FileServer, tmp_path: Path) -> None:
    url, info = _serve(http_server)
    cache = ShardCache(tmp_path / "cache")
    _rows(url, cache, info.checksum.digest)
    assert (cache.directory / f"sha256-{info.checksum.digest}.shard").is_file()
    # a "digest" that is not one never becomes a file name
    with pytest.raises(IntegrityError, match="64 hex"):
        cache.path_for(url, "../../../etc/passwd")


def test_an_entry_edited_after_download_is_found_and_replaced(
    http_server: FileServer, tmp_path: Path
) -> None:
    url, info = _serve(http_server)
    cache = ShardCache(tmp_path / "cache")
    expected = _rows(url, cache, info.checksum.digest)
    (entry,) = [p for p, _, _ in cache.entries() if p.suffix == ".shard"]
    st = entry.stat()
    data = bytearray(entry.read_bytes())
    data[-3000] ^= 0xFF  # inside the last row's array: it would still decode
    entry.write_bytes(bytes(data))
    os.utime(entry, ns=(st.st_atime_ns, st.st_mtime_ns))  # and hide the mtime change
    assert entry.stat().st_size == st.st_size

    gets = http_server.count("GET", "/" + Path(info.url).name)
    with pytest.warns(AtdataWarning, match="no longer matches"):
        again = _rows(url, cache, info.checksum.digest)
    assert again == expected
    assert http_server.count("GET", "/" + Path(info.url).name) == gets + 1
    assert entry.read_bytes() == Path(info.url).read_bytes()


def test_an_entry_planted_in_a_shared_cache_is_not_read(
    http_server: FileServer, tmp_path: Path
) -> None:
    url, info = _serve(http_server)
    _, other = _serve(http_server, first=500)  # other valid samples
    cache = ShardCache(tmp_path / "shared")
    planted = cache.path_for(url, info.checksum.digest)
    planted.write_bytes(Path(other.url).read_bytes())

    with pytest.warns(AtdataWarning, match="no longer matches"):
        got = _rows(url, cache, info.checksum.digest)
    assert [i for i, _ in got] == list(range(10))
    assert planted.read_bytes() == Path(info.url).read_bytes()


def test_an_unchanged_entry_is_not_hashed_again(http_server: FileServer, tmp_path: Path) -> None:
    url, info = _serve(http_server)
    cache = ShardCache(tmp_path / "cache")
    _rows(url, cache, info.checksum.digest)
    entry = cache.path_for(url, info.checksum.digest)
    memo = default_memo()
    fp = Fingerprint.of(entry.stat())
    assert memo.is_verified(str(entry), info.checksum.digest, fp)  # remembered from the fill

    db = sqlite3.connect(tmp_path / "memo.sqlite")
    (stamp,) = db.execute("SELECT at FROM verified WHERE path=?", (str(entry),)).fetchone()
    _rows(url, cache, info.checksum.digest)
    _rows(url, cache, info.checksum.digest)
    (again,) = db.execute("SELECT at FROM verified WHERE path=?", (str(entry),)).fetchone()
    assert again == stamp  # used twice more, never re-verified

    # any change of the fingerprint (here: only the ctime, by restoring the mtime) re-hashes
    st = entry.stat()
    os.utime(entry, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not memo.is_verified(str(entry), info.checksum.digest, Fingerprint.of(entry.stat()))
    _rows(url, cache, info.checksum.digest)
    (third,) = db.execute("SELECT at FROM verified WHERE path=?", (str(entry),)).fetchone()
    assert third > stamp
