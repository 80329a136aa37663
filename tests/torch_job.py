"""A small DDP training job for the torch tests (run as a script, one process per rank).

    python tests/torch_job.py DATA_DIR OUT_DIR [--workers 2] [--batch 8] [--shuffle]
        [--reader loader|feed] [--resume STATE] [--save-at STEP] [--stop-after STEP]

Environment: RANK, WORLD_SIZE and ATDATA_TEST_STORE (a file for torch.distributed's FileStore;
no TCP port to find). Each rank appends one line per batch it trains on to
``OUT_DIR/keys-<rank>.txt`` (``step<TAB>key,key,...``, flushed and fsynced, so the lines survive a
SIGKILL). With ``--save-at k``, rank 0 writes the loader's state after step ``k`` to
``OUT_DIR/state.json`` (atomically). With ``--stop-after s`` the job trains ``s`` steps and then
sleeps (waiting to be killed). At the end each rank writes ``OUT_DIR/done-<rank>.json``.
"""

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import atdata
import atdata.torch
from atdata import NDArray
from atdata.torch.feed import feed

TIMEOUT = datetime.timedelta(seconds=60)


@atdata.packable
class Point:
    """A regression sample: ``target = vec . w`` for a fixed ``w``."""

    name: str
    vec: Annotated[NDArray[np.float32], atdata.Shape(8)]
    target: float


# -- helpers for the tests that run this job ----------------------------------------------------
SHARD_SIZES = (37, 50, 13, 61, 29, 10)  # 200 samples in uneven shards


def write_uneven(root: Path, sizes: tuple[int, ...] = SHARD_SIZES) -> list[str]:
    """Shards of the given sizes under ``root``; returns every sample key."""
    w = np.arange(1, 9, dtype=np.float32) / 8
    rng = np.random.default_rng(3)
    keys: list[str] = []
    n = 0
    for i, size in enumerate(sizes):
        vecs = rng.random((size, 8), dtype=np.float32)
        names = [f"s{n + j:05d}" for j in range(size)]
        samples = [Point(k, v, float(v @ w)) for k, v in zip(names, vecs, strict=True)]
        atdata.write_samples(
            samples, str(root / f"part{i:02d}-%06d.tar"), maxcount=size + 1, key_field="name"
        )
        keys += names
        n += size
    return keys


def launch(data: Path, out: Path, world: int, *extra: str) -> "list[subprocess.Popen[bytes]]":
    """Start ``world`` ranks of this job, each in its own process group (workers included)."""
    store = out / "store"
    out.mkdir(parents=True, exist_ok=True)
    procs = []
    for rank in range(world):
        env = dict(
            os.environ,
            RANK=str(rank),
            WORLD_SIZE=str(world),
            MASTER_ADDR="127.0.0.1",
            GLOO_SOCKET_IFNAME="lo",
            ATDATA_TEST_STORE=str(store),
        )
        err = open(out / f"stderr-{rank}.txt", "ab")
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, str(data), str(out), *extra],
                env=env,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        )
    return procs


def wait_all(procs: "list[subprocess.Popen[bytes]]", timeout: float, out: Path) -> None:
    """Wait for every rank; on a timeout or failure kill them all and fail with their stderr."""
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        kill_all(procs)
        raise AssertionError(f"the job hung (>{timeout:.0f} s):\n{stderr_of(out)}") from None
    codes = [p.returncode for p in procs]
    if any(codes):
        raise AssertionError(f"the job failed with exit codes {codes}:\n{stderr_of(out)}")


def kill_all(procs: "list[subprocess.Popen[bytes]]") -> None:
    """SIGKILL each rank's process group (the rank and its DataLoader workers)."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        p.wait(timeout=30)


def stderr_of(out: Path) -> str:
    return "\n".join(f.read_text(errors="replace")[-3000:] for f in sorted(out.glob("stderr-*")))


def batches_of(out: Path, rank: int) -> list[tuple[int, list[str]]]:
    """(step, keys) of every batch rank ``rank`` trained on, in order."""
    path = out / f"keys-{rank}.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(int(a), b.split(",")) for a, b in (line.split("\t") for line in lines)]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("out", type=Path)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--shuffle", action="store_true")
    p.add_argument("--reader", choices=("loader", "feed"), default="loader")
    p.add_argument("--resume", type=Path)
    p.add_argument("--save-at", type=int)
    p.add_argument("--stop-after", type=int)
    args = p.parse_args()

    store = dist.FileStore(os.environ["ATDATA_TEST_STORE"], int(os.environ["WORLD_SIZE"]))
    dist.init_process_group(
        "gloo",
        store=store,
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        timeout=TIMEOUT,
    )
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)

    ds = atdata.Dataset[Point](sorted(str(p) for p in Path(args.data).glob("*.tar")))
    # rank and world size come from torch.distributed
    tds = ds.to_torch(batch_size=args.batch, shuffle=args.shuffle, seed=7, drop_last=False)
    if args.reader == "feed":
        batches: atdata.torch.TorchLoader | atdata.torch.feed.Feed = feed(tds, threads=2)
    else:
        batches = atdata.torch.loader(tds, num_workers=args.workers)
    if args.resume is not None:
        batches.load_state_dict(json.loads(args.resume.read_text()))

    model = DistributedDataParallel(torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / f"keys-{rank}.txt", "a")
    steps, loss = 0, torch.tensor(0.0)
    for batch in batches:
        pred = model(batch["vec"]).squeeze(1)
        loss = torch.nn.functional.mse_loss(pred, batch["target"].float())
        opt.zero_grad()
        loss.backward()  # the all-reduce: a rank with fewer batches would hang the others here
        opt.step()
        steps += 1
        log.write(f"{steps}\t{','.join(batch['__key__'])}\n")
        log.flush()
        os.fsync(log.fileno())
        if args.save_at == steps and rank == 0:
            tmp = args.out / "state.json.tmp"
            tmp.write_text(json.dumps(dict(batches.state_dict(), step=steps)))
            os.replace(tmp, args.out / "state.json")
        if args.stop_after == steps:
            dist.barrier()
            time.sleep(3600)  # killed here
    dist.barrier()
    done = {"rank": rank, "world": world, "steps": steps, "loss": float(loss)}
    (args.out / f"done-{rank}.json").write_text(json.dumps(done))
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
