"""pytest fixtures for testing your own code against atdata: opt in with one line in your
top-level ``conftest.py``::

    pytest_plugins = ["atdata.testing"]

* ``tmp_index``: an :class:`~atdata.Index` that lives under ``tmp_path`` (SQLite at
  ``<tmp>/atdata-home/index.db``, shards in ``<tmp>/atdata-home/data``); ``ATDATA_HOME`` points
  there for the test, so ``atdata.Index()``, ``load_dataset("@local/...")`` and the CLI see it
  too, and ``ATDATA_INDEX_URL`` is unset.
* ``tmp_dataset``: a factory, ``tmp_dataset(T, n=8, seed=0, maxcount=None)``, writing
  ``make_samples(T, n, seed)`` to shards under ``tmp_path`` and returning the dataset.
* ``make_samples``: :func:`atdata.samplegen.make_samples`, deterministic samples of a type
  (also importable: ``from atdata.testing import make_samples``).

The plugin is opt-in rather than registered for every pytest run in an environment that has
atdata installed: nothing of atdata is imported into test sessions that do not ask for it, and
its fixture names never meet another project's unless that project chooses them. ``import
atdata`` does not import this module (or pytest).
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from .index import Index
from .samplegen import make_samples as _make_samples
from .stores.disk import LocalDiskStore
from .writing import WrittenDataset, write_samples

__all__ = ["make_samples", "tmp_dataset", "tmp_index"]

T = TypeVar("T")
make_samples = _make_samples
TmpDataset = Callable[..., WrittenDataset[Any]]


@pytest.fixture
def tmp_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Index]:
    """A throwaway SQLite index and disk store under ``tmp_path``; ``ATDATA_HOME`` points there."""
    home = tmp_path / "atdata-home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("ATDATA_HOME", str(home))
    monkeypatch.delenv("ATDATA_INDEX_URL", raising=False)
    index = Index(data_store=LocalDiskStore(), home=home)
    try:
        yield index
    finally:
        index.close()


@pytest.fixture
def tmp_dataset(tmp_path: Path) -> TmpDataset:
    """``tmp_dataset(T, n=8, seed=0, maxcount=None)``: ``n`` generated samples of ``T`` in shards."""
    made = [0]

    def make(
        sample_type: type[T], n: int = 8, seed: int = 0, maxcount: int | None = None
    ) -> WrittenDataset[T]:
        made[0] += 1
        name = f"{sample_type.__name__.lower()}-{made[0]}"
        path = tmp_path / "atdata-datasets" / name / f"{name}.tar"
        samples = _make_samples(sample_type, n, seed)
        if maxcount is None:
            return write_samples(samples, os.fspath(path))
        return write_samples(samples, os.fspath(path), maxcount=maxcount)

    return make


@pytest.fixture(name="make_samples")
def make_samples_fixture() -> Callable[..., list[Any]]:
    """:func:`atdata.samplegen.make_samples`: ``make_samples(T, n, seed)``."""
    return _make_samples
