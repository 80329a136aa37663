"""A NUL character in a path is an AtdataError naming the path (the OS would raise ValueError)."""

from pathlib import Path

import pytest

import atdata
from atdata import (
    AtdataError,
    Dataset,
    IndexUnavailableError,
    InvalidArgumentError,
    SourceError,
    load_dataset,
)


@atdata.packable
class Row:
    x: int


@pytest.fixture()
def shard(tmp_path: Path) -> str:
    (info,) = atdata.write_samples([Row(1), Row(2)], str(tmp_path / "rows-%06d.tar")).shard_infos
    return info.url


@pytest.mark.parametrize("on_error", ["raise", "skip"])
@pytest.mark.parametrize("form", ["path", "file-url", "escaped-file-url"])
def test_reading_a_path_with_a_nul_is_a_source_error(
    tmp_path: Path, on_error: str, form: str
) -> None:
    bad = {
        "path": f"{tmp_path}/a\x00b.tar",
        "file-url": f"file://{tmp_path}/a\x00b.tar",
        "escaped-file-url": f"file://{tmp_path}/a%00b.tar",
    }[form]
    with pytest.raises(SourceError, match="NUL"):
        list(Dataset[Row](bad, on_error=on_error))  # type: ignore[arg-type]
    with pytest.raises(AtdataError):
        load_dataset(bad)


def test_writing_to_a_pattern_with_a_nul_is_an_invalid_argument(tmp_path: Path) -> None:
    pattern = f"{tmp_path}/a\x00b-%06d.tar"
    with pytest.raises(InvalidArgumentError, match="NUL"):
        atdata.write_samples([Row(1)], pattern)
    with pytest.raises(ValueError):  # still a ValueError for callers that catch that
        atdata.ShardWriter(pattern)
    assert list(tmp_path.iterdir()) == []


def test_a_cache_directory_with_a_nul_is_a_source_error(tmp_path: Path, shard: str) -> None:
    with pytest.raises(SourceError):
        list(Dataset[Row](shard, cache=f"{tmp_path}/c\x00d"))


def test_an_index_home_with_a_nul_is_an_index_error(tmp_path: Path) -> None:
    with pytest.raises(IndexUnavailableError):
        atdata.Index(home=f"{tmp_path}/x\x00y")
