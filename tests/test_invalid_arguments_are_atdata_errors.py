"""A bad argument to the public API raises InvalidArgumentError: an AtdataError and a ValueError.

So ``except atdata.AtdataError`` catches every error atdata raises, and code written against the
old bare ``ValueError`` keeps working.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import atdata
from atdata import AtdataError, Dataset, DictSample, Index, InvalidArgumentError, Shape
from atdata.sources import RetryPolicy, ShardCache


@atdata.packable
class Row:
    x: int


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("rows")
    (info,) = atdata.write_samples([Row(1), Row(2)], str(out / "rows-%06d.tar")).shard_infos
    return info.url


CALLS: dict[str, Callable[[str, Path], Any]] = {
    "Dataset(on_error='ignore')": lambda s, t: Dataset[Row](s, on_error="ignore"),  # type: ignore[arg-type]
    "shuffled(buffer_size=0)": lambda s, t: Dataset[Row](s).shuffled(buffer_size=0),
    "ordered(batch_size=0)": lambda s, t: Dataset[Row](s).ordered(batch_size=0),
    "ordered(start=-1)": lambda s, t: Dataset[Row](s).ordered(start=-1),
    "ShardWriter(maxcount=0)": lambda s, t: atdata.ShardWriter(str(t / "x-%06d.tar"), maxcount=0),
    "ShardWriter without %d": lambda s, t: atdata.ShardWriter(str(t / "x.tar")),
    "Shape(-1)": lambda s, t: Shape(-1),
    "ShardCache(max_bytes=-1)": lambda s, t: ShardCache(t / "cache", max_bytes=-1),
    "RetryPolicy(attempts=0)": lambda s, t: RetryPolicy(attempts=0),
    "Index.write to a bad name": lambda s, t: Index(home=t).write([Row(1)], "../etc"),
    "Index.write of nothing": lambda s, t: Index(home=t).write([], "rows"),
    "Index.get of a bad reference": lambda s, t: Index(home=t).get("atdata://x/nope/y"),
    "Index.history with a version": lambda s, t: Index(home=t).history("rows@1"),
    "Index.add_schema(DictSample)": lambda s, t: Index(home=t).add_schema(DictSample),
    "Index with no repositories": lambda s, t: Index(repositories=[]),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_bad_arguments_raise_invalid_argument_error(shard: str, tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        CALLS[name](shard, tmp_path)
    assert isinstance(info.value, AtdataError) and isinstance(info.value, ValueError)
    assert str(info.value)


def test_the_error_tree_documents_invalid_argument_error() -> None:
    assert "InvalidArgumentError" in (atdata.errors.__doc__ or "")
    assert issubclass(atdata.InvalidArgumentError, atdata.AtdataError)
