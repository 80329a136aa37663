"""DataLoader workers write batches into a ring of reused shared-memory segments: a slot is used
again only after the training process let go of the batch in it, so batches the loop keeps never
change, slots are recycled (few segments made for many batches), and an early shutdown or a
killed worker leaves nothing behind in /dev/shm."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import atdata

torch = pytest.importorskip("torch")
import atdata.torch as atorch  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")


@atdata.packable
class Row:
    label: int
    pixels: np.ndarray


def pixels(i: int) -> np.ndarray:
    return np.full((16, 16, 3), i % 251, np.uint8)


@pytest.fixture
def tds(tmp_path: Path) -> Any:
    rows = [Row(i, pixels(i)) for i in range(800)]
    ds = atdata.write_samples(rows, str(tmp_path / "r-%06d.tar"), maxcount=200)
    return atdata.Dataset(ds.shards, Row).to_torch(4)


@pytest.fixture
def segments_made(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A counter of shared-memory segments made (in workers too: they are forked after this)."""
    made = torch.multiprocessing.get_context("fork").Value("i", 0)
    original = torch.UntypedStorage._new_shared

    def counting(cls: Any, size: int, *args: Any, **kwargs: Any) -> Any:
        with made.get_lock():
            made.value += 1
        return original(size, *args, **kwargs)

    monkeypatch.setattr(torch.UntypedStorage, "_new_shared", classmethod(counting))
    return made


@pytest.mark.parametrize("plain", [False, True], ids=["atdata-loader", "plain-DataLoader"])
def test_slots_are_recycled_and_kept_batches_never_change(
    tds: Any, segments_made: Any, plain: bool
) -> None:
    kwargs: dict[str, Any] = {"num_workers": 2, "multiprocessing_context": "fork"}
    if plain:  # its default collate_fn (default_convert) copies the batch dict in the worker
        loader: Any = torch.utils.data.DataLoader(tds, batch_size=None, **kwargs)
    else:
        loader = atorch.loader(tds, **kwargs)
    kept = []
    batches = 0
    for batch in loader:
        batches += 1
        if batches % 10 == 0:
            kept.append(batch)  # held to the end while 190 more batches pass through the slots
    assert batches == 200 and len(kept) == 20
    for batch in kept:
        for label, image in zip(batch["label"].tolist(), batch["pixels"], strict=True):
            assert np.array_equal(image.numpy(), pixels(label)), label
    # without the ring: one segment per batch (200); with it: the slots, plus fresh ones while
    # kept batches hold slots and the worker is ahead
    assert segments_made.value < 80, segments_made.value


def test_a_view_of_a_batch_keeps_its_slot(tds: Any) -> None:
    loader = atorch.loader(tds, num_workers=1, multiprocessing_context="fork")
    views = []
    for i, batch in enumerate(loader):
        if i % 7 == 0:
            views.append((batch["label"][0].item(), batch["pixels"][0]))  # a view, not a copy
        del batch
    assert len(views) > 20
    for label, view in views:
        assert np.array_equal(view.numpy(), pixels(label))


def _shm() -> set[str]:
    """torch's segments in /dev/shm (other programs on the machine make their own)."""
    names = os.listdir("/dev/shm") if os.path.isdir("/dev/shm") else []
    return {n for n in names if n.startswith("torch")}


_KILL_A_WORKER = """
import os, signal, sys, atdata, atdata.torch as atorch
from test_worker_batch_slots_are_reused import Row
tds = atdata.Dataset(sys.argv[1], Row).to_torch(4)
loader = atorch.loader(tds, num_workers=2, multiprocessing_context="fork")
it = iter(loader)
for _ in range(5):
    next(it)
del it  # early shutdown with batches in flight
it = iter(loader.dataloader)
next(it)
os.kill(it._workers[0].pid, signal.SIGKILL)
try:
    for _ in it:
        pass
# torch says RuntimeError; a batch in flight from the killed worker can instead fail to arrive
# (its file descriptor's sender is gone: ConnectionResetError while unpickling it)
except (RuntimeError, ConnectionResetError) as exc:
    print("worker died:", exc, flush=True)
    os._exit(0)  # skip the interpreter's teardown next to a killed worker's broken pipes
"""


def test_early_shutdown_and_a_killed_worker_leave_no_segments(tds: Any) -> None:
    before = _shm()
    result = subprocess.run(
        [sys.executable, "-c", _KILL_A_WORKER, tds.dataset.urls[0].rsplit("-", 1)[0] + "-*.tar"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "worker died" in result.stdout, result.stderr
    assert _shm() - before == set(), sorted(_shm() - before)
