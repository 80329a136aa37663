"""Local shards with a recorded sha256 (an index's stored shards, ``checksums=``) are verified
the first time they are read after they changed, and not re-hashed while they are unchanged:
the verification is remembered across processes in a bounded SQLite memo."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atdata import Dataset, Index, load_dataset, write_samples
from atdata.errors import IntegrityError
from atdata.sample import packable
from atdata.sources.memo import Fingerprint, VerifyMemo


@packable
class Row:
    i: int
    v: np.ndarray


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("ATDATA_INDEX_URL", raising=False)
    monkeypatch.delenv("ATDATA_CACHE_DIR", raising=False)
    monkeypatch.delenv("ATDATA_VERIFY_MEMO", raising=False)
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _rows(n: int) -> list[Row]:
    rng = np.random.default_rng(0)
    return [Row(i=i, v=rng.standard_normal(2000).astype(np.float32)) for i in range(n)]


def _stored(name: str = "rows") -> list[str]:
    with Index() as index:
        index.write(_rows(12), name=name, maxcount=4)
        return [s.url for s in index.get(name).shards]


def _flip_in_place(path: str) -> None:
    """Change one array byte without changing the size, and put the old mtime back."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(st.st_size - 3000)
        b = f.read(1)
        f.seek(st.st_size - 3000)
        f.write(bytes([b[0] ^ 0x01]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _local_path(url: str) -> str:
    return url.removeprefix("file://")


def test_a_flipped_byte_in_a_stored_shard_is_detected_by_load_dataset() -> None:
    urls = _stored()
    assert [r.i for r in load_dataset("@local/rows", split="train")] == list(range(12))
    _flip_in_place(_local_path(urls[1]))

    ds = load_dataset("@local/rows", split="train")
    got: list[int] = []
    with pytest.raises(IntegrityError) as err:
        for r in ds:
            got.append(r.i)
    assert got == [0, 1, 2, 3]  # the intact first shard, nothing from the changed one
    assert err.value.shard == urls[1]
    with Index() as index:
        loaded: Dataset[Any] = index.load("rows")
        with pytest.raises(IntegrityError):
            loaded[5]
        with pytest.raises(IntegrityError):
            list(loaded.ordered(batch_size=4))
        assert loaded[0].i == 0


def test_a_replaced_stored_shard_is_detected(tmp_path: Path) -> None:
    urls = _stored()
    path = _local_path(urls[0])
    other = write_samples(_rows(4)[::-1], str(tmp_path / "o-%06d.tar"), maxcount=4).shard_infos[0]
    st = os.stat(path)
    assert os.path.getsize(other.url) == st.st_size
    os.replace(other.url, path)  # same size, other inode
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(IntegrityError):
        list(load_dataset("@local/rows", split="train"))


def test_checksums_given_to_a_dataset_verify_local_files(tmp_path: Path) -> None:
    (info,) = write_samples(_rows(4), str(tmp_path / "d-%06d.tar"), maxcount=4).shard_infos
    ds: Dataset[Row] = Dataset(info.url, Row, checksums={info.url: info.checksum.digest})
    assert [r.i for r in ds] == [0, 1, 2, 3]
    _flip_in_place(info.url)
    fresh: Dataset[Row] = Dataset(info.url, Row, checksums={info.url: info.checksum.digest})
    with pytest.raises(IntegrityError, match="sha256"):
        list(fresh)


_READ = """
import sys
from atdata import load_dataset
print(sum(r.i for r in load_dataset("@local/rows", split="train")))
"""


def test_the_verification_is_remembered_across_processes(_home: Path) -> None:
    urls = _stored()
    env = {**os.environ, "ATDATA_HOME": str(_home)}
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", _READ], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == str(sum(range(12)))
        if _ == 0:
            db = sqlite3.connect(_home / "verified.sqlite")
            first = dict(db.execute("SELECT path, at FROM verified").fetchall())
            assert sorted(first) == sorted(_local_path(u) for u in urls)
    # the second process found every shard unchanged and hashed none of them
    assert dict(db.execute("SELECT path, at FROM verified").fetchall()) == first

    _flip_in_place(_local_path(urls[2]))
    bad = subprocess.run(
        [sys.executable, "-c", _READ], env=env, capture_output=True, text=True, check=False
    )
    assert bad.returncode != 0 and "IntegrityError" in bad.stderr and urls[2] in bad.stderr


def test_the_memo_is_bounded(tmp_path: Path) -> None:
    memo = VerifyMemo(tmp_path / "m.sqlite", max_rows=50)
    target = tmp_path / "f"
    target.write_bytes(b"x")
    fp = Fingerprint.of(target.stat())
    for n in range(1000):
        memo.remember(f"{tmp_path}/f{n}", "a" * 64, fp)
    assert memo.rows() <= 50 + 64
    assert memo.is_verified(f"{tmp_path}/f999", "a" * 64, fp)  # the newest are kept


def _remember_many(db: str, worker: int) -> None:
    memo = VerifyMemo(db)
    fp = Fingerprint(1, worker, 1, 1, 1)
    for n in range(100):
        memo.remember(f"/w{worker}/f{n}", "b" * 64, fp)


def test_concurrent_processes_share_the_memo(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.sqlite")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_remember_many, args=(db, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert VerifyMemo(db).rows() == 400
