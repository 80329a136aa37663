"""Testing your own pipeline with atdata's pytest fixtures, as a user's test file would.

In your project, put ``pytest_plugins = ["atdata.testing"]`` in the top-level ``conftest.py``;
this example declares it here so that it runs on its own: ``python examples/test_with_atdata_fixtures.py``
(or ``pytest examples/test_with_atdata_fixtures.py``).
"""

from typing import Annotated

import numpy as np
import pytest

import atdata
from atdata import NDArray

pytest_plugins = ["atdata.testing"]


@atdata.packable
class Scan:
    image: Annotated[NDArray[np.uint8], atdata.Shape(16, 16)]
    label: int
    site: str | None = None


def brightness(ds: atdata.Dataset[Scan]) -> float:
    """The code under test: mean pixel value over a dataset, batch by batch."""
    total, count = 0.0, 0
    for batch in ds.ordered(batch_size=4):
        total += float(batch.image.sum())
        count += batch.image.size
    return total / count


def test_brightness_matches_numpy(tmp_dataset, make_samples) -> None:  # type: ignore[no-untyped-def]
    ds = tmp_dataset(Scan, n=10, seed=3)
    expected = np.mean([s.image for s in make_samples(Scan, 10, seed=3)])
    assert brightness(ds) == pytest.approx(expected)


def test_pipeline_reads_from_the_index(tmp_index: atdata.Index, make_samples) -> None:  # type: ignore[no-untyped-def]
    tmp_index.write(make_samples(Scan, 6, seed=0), name="scans")
    ds = atdata.load_dataset("@local/scans", split="train")  # the schema rebuilds the type
    assert len(ds) == 6 and ds[0].image.shape == (16, 16)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
