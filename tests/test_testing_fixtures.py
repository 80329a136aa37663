"""``atdata.testing``: the fixtures this suite loads the way a user would (``pytest_plugins`` in
conftest.py), deterministic ``make_samples`` that follows a type's schema, and no pytest import
at ``import atdata``."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np

import atdata
from atdata import NDArray
from atdata.testing import make_samples as make


@atdata.packable
class Leaf:
    code: str
    weights: Annotated[NDArray[np.int16], atdata.Shape(3)]


@atdata.packable
class Everything:
    image: Annotated[NDArray[np.uint8], atdata.Shape(4, None, 3)]
    mask: Annotated[NDArray[np.bool_], atdata.Shape(2, 2)]
    free: NDArray[Any]
    count: int
    score: float
    flag: bool
    name: str
    blob: bytes
    leaf: Leaf
    leaves: list[Leaf]
    table: dict[str, float]
    maybe: int | None = None


def test_make_samples_follows_the_schema_and_is_deterministic() -> None:
    samples = make(Everything, 40, seed=5)
    assert len(samples) == 40 and all(isinstance(s, Everything) for s in samples)
    for s in samples:
        assert s.image.dtype == np.uint8 and s.image.shape[0] == 4 and s.image.shape[2] == 3
        assert s.mask.dtype == np.bool_ and s.mask.shape == (2, 2)
        assert isinstance(s.count, int) and isinstance(s.score, float) and isinstance(s.flag, bool)
        assert isinstance(s.name, str) and isinstance(s.blob, bytes)
        assert isinstance(s.leaf, Leaf) and s.leaf.weights.dtype == np.int16
        assert all(isinstance(x, Leaf) for x in s.leaves)
        assert all(isinstance(k, str) and isinstance(v, float) for k, v in s.table.items())
    assert {s.maybe is None for s in samples} == {True, False}  # optional: some None, some not
    assert len({s.image.shape[1] for s in samples}) > 1  # None dimensions vary
    again = make(Everything, 40, seed=5)
    assert all(a.to_bytes() == b.to_bytes() for a, b in zip(samples, again, strict=True))
    other = make(Everything, 40, seed=6)
    assert any(a.to_bytes() != b.to_bytes() for a, b in zip(samples, other, strict=True))


def test_make_samples_of_a_rebuilt_type(tmp_index: atdata.Index) -> None:
    rebuilt = atdata.Schema.from_type(Everything).to_sample_type()
    samples = make(rebuilt, 3, seed=0)
    assert [s.count for s in samples] == [s.count for s in make(Everything, 3, seed=0)]


def test_tmp_index_is_isolated_and_is_the_default_index(tmp_index: atdata.Index) -> None:
    home = Path(os.environ["ATDATA_HOME"])
    assert home.name == "atdata-home" and "ATDATA_INDEX_URL" not in os.environ
    tmp_index.write(make(Leaf, 4, seed=1), name="leaves")
    with atdata.Index() as same:  # what user code opening the default index sees
        assert [e.name for e in same.list_datasets()] == ["leaves"]
    entry = tmp_index.get("leaves")
    assert all(Path(s.url).is_relative_to(home.resolve() / "data") for s in entry.shards)


def test_tmp_dataset_writes_generated_samples(tmp_dataset: Any, make_samples: Any) -> None:
    ds = tmp_dataset(Leaf, n=7, seed=2, maxcount=3)
    assert [s.count for s in ds.shard_infos] == [3, 3, 1]
    assert [s.code for s in ds] == [s.code for s in make_samples(Leaf, 7, seed=2)]
    assert len(tmp_dataset(Leaf)) == 8


def test_import_atdata_does_not_import_pytest_or_the_plugin() -> None:
    code = "import sys, atdata; print('pytest' in sys.modules, 'atdata.testing' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]
