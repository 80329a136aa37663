"""Hostile size fields and endless bodies never grow the reader's memory.

A member header claiming 900 GiB followed by an endless body, an endless ``.idx`` sidecar, a
sparse multi-gigabyte ``.idx`` file and sizes that would wrap int64 all end in a ShardError (or a
warning and a scan, for sidecars) while the reading process runs under an address-space limit of
1 GiB (``resource.setrlimit(RLIMIT_AS)``), against a real loopback HTTP server and local files.
"""

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import msgpack
import numpy as np
import pytest

import atdata
from atdata import AtdataWarning, Dataset, ShardError, write_samples
from atdata.shards.offsets import OffsetIndex
from atdata.shards.tar import encode_header
from http_server import FileServer

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS semantics")

N = 12
LIMIT = 1 << 30


@atdata.packable
class Row:
    i: int
    text: str


def _shard(directory: Path) -> Path:
    (info,) = write_samples(
        (Row(i, "x" * i) for i in range(N)), str(directory / "r-%06d.tar")
    ).shard_infos
    return Path(info.url)


def _run_limited(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter limited to LIMIT bytes of address space."""
    head = (
        "import resource, sys, warnings\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({LIMIT}, {LIMIT}))\n"
        "warnings.simplefilter('ignore')\n"
        "import atdata\n"
        "from atdata import Dataset, ShardError\n"
        "try:\n"
    )
    tail = "except MemoryError:\n    print('MemoryError')\n    sys.exit(3)\n"
    script = head + textwrap.indent(textwrap.dedent(code).strip() + "\n", "    ") + tail
    full_env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **env}
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def _header(name: bytes, size: int) -> bytes:
    """A valid ustar header whose size field is GNU base-256 (any size at all)."""
    h = bytearray(encode_header(name, 0))
    h[124:136] = b"\x80" + size.to_bytes(11, "big")
    h[148:156] = b"        "
    h[148:156] = b"%06o\x00 " % sum(h)
    return bytes(h)


def _members_without_end(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) - 1024]  # drop the end-of-archive blocks


def test_an_endless_member_claiming_900_gib_is_refused_over_http(tmp_path: Path) -> None:
    shard = _shard(tmp_path)
    prefix = _members_without_end(shard) + _header(b"huge.msgpack", 900 << 30)
    with FileServer(tmp_path) as server:
        server.serve_endless("/endless.tar", prefix)
        url = server.url_for("endless.tar")
        out = _run_limited(
            f"""
            N = {N}
            got = []
            try:
                for row in Dataset({url!r}).ordered():
                    got.append(row["i"])
            except ShardError as exc:
                print("ShardError", len(got) >= N - 1, "larger" in str(exc))
            """
        )
    assert out == "ShardError True True"


def test_a_member_larger_than_the_streamed_member_cap_is_refused(tmp_path: Path) -> None:
    shard = _shard(tmp_path)
    prefix = _members_without_end(shard) + encode_header(b"big.msgpack", 900 << 20)
    with FileServer(tmp_path) as server:
        server.serve_endless("/big.tar", prefix)
        url = server.url_for("big.tar")
        out = _run_limited(
            f"""
            try:
                print(sum(1 for _ in Dataset({url!r}).ordered()))
            except ShardError as exc:
                print("ShardError", "ATDATA_MAX_MEMBER_BYTES" in str(exc))
            """,
            ATDATA_MAX_MEMBER_BYTES=str(16 << 20),
        )
    assert out == "ShardError True"


def test_a_recorded_shard_size_bounds_a_streamed_member(tmp_path: Path) -> None:
    """An index entry records each shard's size: a member claiming more is refused at once,
    even below the streamed-member cap, and an endless shard is cut at its recorded size."""
    shard = _shard(tmp_path)
    home = tmp_path / "home"
    with FileServer(tmp_path) as server:
        url = server.url_for(shard.name)
        out = _run_limited(
            f"""
            from atdata.index import Index
            with Index() as index:
                entry = index.insert([{url!r}], name="rows")
                print(entry.shards[0].size)
            """,
            ATDATA_HOME=str(home),
        )
        assert int(out) == shard.stat().st_size
        prefix = _members_without_end(shard)[: 512 * 4] + encode_header(b"z.msgpack", 900 << 20)
        server.serve_endless("/" + shard.name, prefix)
        out = _run_limited(
            """
            from atdata.index import Index
            with Index() as index:
                ds = index.load("rows")
                try:
                    print(sum(1 for _ in ds.ordered()))
                except ShardError as exc:
                    print("ShardError", "record" in str(exc))
            """,
            ATDATA_HOME=str(home),
            ATDATA_CACHE_DIR="",
        )
    assert out == "ShardError True"


def test_an_endless_sidecar_over_http_is_not_buffered(tmp_path: Path) -> None:
    shard = _shard(tmp_path)
    Path(str(shard) + ".idx").unlink()
    with FileServer(tmp_path) as server:
        server.serve_endless("/" + shard.name + ".idx", b"\x88")
        url = server.url_for(shard.name)
        out = _run_limited(
            f"""
            ds = Dataset({url!r})
            print(len(ds), ds[5]["i"])
            """
        )
    assert out == f"{N} 5"


def test_a_huge_sparse_sidecar_file_is_not_read(tmp_path: Path) -> None:
    shard = _shard(tmp_path)
    with open(str(shard) + ".idx", "r+b") as f:
        f.truncate(8 << 30)  # sparse: no disk used, but 8 GiB to read
    out = _run_limited(
        f"""
        ds = Dataset({str(shard)!r})
        print(len(ds), ds[7]["i"])
        """
    )
    assert out == f"{N} 7"


def _sidecar_with(path: Path, **fields: object) -> None:
    raw = msgpack.unpackb(Path(str(path) + ".idx").read_bytes())
    raw.update(fields)
    Path(str(path) + ".idx").write_bytes(msgpack.packb(raw, use_bin_type=True))


@pytest.mark.parametrize(
    "fields",
    [
        # offset + size wraps around int64 to a negative number
        {"shard_size": 2**63 - 1, "sizes": np.array([2**63 - 600] * N, "<i8").tobytes()},
        {"shard_size": 2**64 - 1},
        {"header_offsets": np.array([2**62] * N, "<i8").tobytes()},
        {"sizes": b"\x01\x02\x03"},
        {"keys": [1, 2, 3]},
    ],
)
def test_impossible_sizes_in_a_sidecar_are_a_shard_error(tmp_path: Path, fields: dict) -> None:
    shard = _shard(tmp_path)
    _sidecar_with(shard, **fields)
    with pytest.raises(ShardError, match=r"\.idx"):
        OffsetIndex.from_bytes(Path(str(shard) + ".idx").read_bytes(), str(shard) + ".idx")
    ds = Dataset(str(shard))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert (len(ds), ds[3]["i"], ds.get("00000004")["i"]) == (N, 3, 4)
    assert any(w.category is AtdataWarning and ".idx" in str(w.message) for w in caught)
