"""Resume after the job is killed mid-epoch: no sample repeated or lost, in any world size.

A 2-rank DDP job (2 DataLoader workers per rank, shuffled) saves rank 0's ``state_dict()`` after
step 5, trains two more steps, and is killed with SIGKILL (ranks and workers). The job is then
started again from the saved state with 2 ranks, with 1 rank, and with 1 rank reading through
the feed instead of a DataLoader. The batches trained before the checkpoint plus those of the
resumed run must be exactly the dataset (the two steps after the checkpoint are trained again,
as they would be after a real crash).
"""

import json
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from torch_job import batches_of, kill_all, launch, stderr_of, wait_all, write_uneven

JOB_TIMEOUT = 240
SAVE_AT = 5


@pytest.fixture(scope="module")
def killed_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("killed")
    data = root / "data"
    data.mkdir()
    keys = write_uneven(data)
    out = root / "run1"
    args = ["--shuffle", "--save-at", str(SAVE_AT), "--stop-after", str(SAVE_AT + 2)]
    procs = launch(data, out, 2, *args)
    try:
        deadline = time.monotonic() + JOB_TIMEOUT
        while not all(len(batches_of(out, r)) >= SAVE_AT + 2 for r in range(2)):
            if any(p.poll() is not None for p in procs):
                raise AssertionError(f"the job ended before it was killed:\n{stderr_of(out)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the job made no progress:\n{stderr_of(out)}")
            time.sleep(0.2)
    finally:
        kill_all(procs)
    assert all(p.returncode == -9 for p in procs)  # really killed, not finished
    return data, out, keys


@pytest.mark.parametrize(
    ("world", "reader"), [(2, "loader"), (1, "loader"), (1, "feed")], ids=["same", "1", "feed"]
)
def test_resumed_job_sees_every_remaining_sample_once(
    killed_job: tuple[Path, Path, list[str]], tmp_path: Path, world: int, reader: str
) -> None:
    data, first, keys = killed_job
    state = json.loads((first / "state.json").read_text())
    assert state["step"] == SAVE_AT and state["world_size"] == 2
    before = [k for r in range(2) for step, b in batches_of(first, r) if step <= SAVE_AT for k in b]
    assert len(before) == SAVE_AT * 2 * 8

    out = tmp_path / "run2"
    args = ["--shuffle", "--resume", str(first / "state.json"), "--reader", reader]
    wait_all(launch(data, out, world, *args), JOB_TIMEOUT, out)

    per_rank = [batches_of(out, r) for r in range(world)]
    assert len({len(b) for b in per_rank}) == 1  # equal batch counts on every rank
    after = [k for rank in per_rank for _, b in rank for k in b]
    assert not set(before) & set(after)
    assert sorted(before + after) == sorted(keys)  # nothing repeated, nothing lost
