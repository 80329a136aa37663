"""A byte range that runs past the end of a shard is a SourceError naming the shard and the byte
where it ended, whether the shard is a local file, a cached copy of a remote one, or remote."""

from pathlib import Path

import pytest

from atdata.errors import SourceError
from atdata.sources import ShardCache, open_source
from atdata.sources.cache import CachedSource
from atdata.sources.http import HttpSource
from http_server import serve_directory

DATA = bytes(range(256)) * 4  # 1024 bytes


def test_a_local_file_range_past_the_end(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    path.write_bytes(DATA)
    source = open_source(str(path))
    assert source.read_range(1000, 24) == DATA[1000:]
    with pytest.raises(SourceError, match=r"a\.tar.*ended at byte 1024, wanted 1030"):
        source.read_range(1000, 30)


def test_cached_and_remote_ranges_past_the_end(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "b.tar").write_bytes(DATA)
    with serve_directory(served) as server:
        url = server.url_for("b.tar")
        cached = CachedSource(HttpSource(url), ShardCache(tmp_path / "cache"))
        assert cached.local_path() is not None  # the range is read from the cached copy
        assert cached.read_range(10, 5) == DATA[10:15]
        for source in (cached, HttpSource(url)):
            with pytest.raises(SourceError, match=r"b\.tar.*ended at byte 1024, wanted 1100"):
                source.read_range(1000, 100)
