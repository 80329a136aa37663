"""DDP with the gloo backend: 2 processes x 2 DataLoader workers over uneven shards.

Every rank must get the same number of batches (else the ranks with fewer finish early and the
others hang in their last all-reduce), and the union of the ranks' batches must be exactly the
dataset: 200 samples in shards of 37/50/13/61/29/10 with batches of 8 on 2 ranks make 12 full
steps and a remainder of 8, which ``uneven="drop", drop_last=False`` splits into a short batch
of 4 on each rank, so nothing is dropped.
"""

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from torch_job import batches_of, launch, wait_all, write_uneven

JOB_TIMEOUT = 240


def test_ddp_ranks_get_equal_batches_and_the_whole_dataset(tmp_path: Path) -> None:
    shuffle = True
    data = tmp_path / "data"
    data.mkdir()
    keys = write_uneven(data)
    out = tmp_path / "run"
    extra = ["--workers", "2", "--batch", "8"] + (["--shuffle"] if shuffle else [])
    wait_all(launch(data, out, 2, *extra), JOB_TIMEOUT, out)

    per_rank = [batches_of(out, r) for r in range(2)]
    assert [len(b) for b in per_rank] == [13, 13]
    assert [len(k) for _, k in per_rank[0]] == [8] * 12 + [4]
    delivered = [k for rank in per_rank for _, batch in rank for k in batch]
    assert sorted(delivered) == sorted(keys)  # each sample exactly once
    if shuffle:
        assert delivered != sorted(delivered)
    done = [json.loads((out / f"done-{r}.json").read_text()) for r in range(2)]
    assert [d["steps"] for d in done] == [13, 13]
    assert all(d["loss"] == d["loss"] for d in done)  # trained: a finite (non-NaN) loss
