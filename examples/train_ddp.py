"""Data-parallel training with torchrun: each rank reads its own, equal share of every epoch,
and a checkpoint resumes exactly, in any number of processes.

Run: uv run torchrun --standalone --nproc_per_node 2 examples/train_ddp.py [output-dir]
 or: uv run python examples/train_ddp.py [output-dir]   (starts torchrun with 2 CPU processes)

Run it again on the same output directory after stopping it (Ctrl-C, a kill): it continues from
the last checkpoint, with the samples of the epoch not yet trained on, each once.
"""

import datetime
import gc
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import atdata
import atdata.torch
from atdata import NDArray

EPOCHS = 2


@atdata.packable
class Reading:
    """A sensor reading and the quantity to predict from it."""

    features: Annotated[NDArray[np.float32], atdata.Shape(16)]
    target: float


def write_data(out: Path) -> None:
    """1,000 samples in shards of uneven size (the ranks still get equal batch counts)."""
    rng = np.random.default_rng(0)
    weights = rng.random(16, dtype=np.float32)
    for i, size in enumerate((300, 120, 410, 170)):
        x = rng.random((size, 16), dtype=np.float32)
        samples = [Reading(row, float(row @ weights)) for row in x]
        atdata.write_samples(samples, str(out / f"readings{i}-%06d.tar"), maxcount=size)


def main(out: Path) -> None:
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=120))
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{os.environ['LOCAL_RANK']}" if cuda else "cpu")
    if rank == 0 and not any(out.glob("*.tar")):
        write_data(out)
    dist.barrier()

    ds = atdata.Dataset[Reading](sorted(str(p) for p in out.glob("readings*.tar")))
    # rank and world size come from torch.distributed; every rank gets len(tds) batches
    tds = ds.to_torch(batch_size=32, shuffle=True, seed=0)
    batches = atdata.torch.loader(tds, num_workers=2, pin_memory=cuda)
    model = DistributedDataParallel(torch.nn.Linear(16, 1).to(device))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    ckpt = out / "checkpoint.pt"
    step, first_epoch = 0, 0
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device)
        model.module.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        batches.load_state_dict(state["data"])  # saved by rank 0; the same for every rank
        step, first_epoch = state["step"], state["data"]["epoch"]
        if rank == 0:
            print(f"resumed at step {step}, epoch {first_epoch}")

    for epoch in range(first_epoch, EPOCHS):
        batches.set_epoch(epoch)
        count = 0
        for batch in batches:
            x = batch["features"].to(device, non_blocking=True)
            y = batch["target"].to(device, non_blocking=True)
            loss = torch.nn.functional.mse_loss(model(x).squeeze(1), y)
            opt.zero_grad()
            loss.backward()  # all-reduce: needs every rank to have the same number of batches
            opt.step()
            step += 1
            count += 1
            if rank == 0 and step % 10 == 0:
                state = {
                    "model": model.module.state_dict(),
                    "optimizer": opt.state_dict(),
                    "data": batches.state_dict(),
                    "step": step,
                }
                torch.save(state, out / "checkpoint.tmp")
                os.replace(out / "checkpoint.tmp", ckpt)  # never a half-written checkpoint
        counts = [torch.zeros(1) for _ in range(world)]
        dist.all_gather(counts, torch.tensor([float(count)]))
        if rank == 0:
            per_rank = "/".join(str(int(c)) for c in counts)
            print(f"epoch {epoch}: batches per rank {per_rank}, loss {loss.item():.4f}")
    if rank == 0:
        print(f"{world} ranks trained {EPOCHS} epochs in lockstep ({step} steps)")
    # tear down in order while the interpreter is whole: the loader's workers and the DDP
    # reducer (which holds Gloo work objects) before the process group they talk through
    dist.barrier()
    del batches, model, opt
    gc.collect()
    dist.destroy_process_group()


def launch(out: str) -> int:
    """Not under torchrun: start it with two CPU processes (``--standalone`` picks a free port)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return subprocess.run([*cmd, __file__, out], check=False).returncode


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "train_ddp_output"
    if "LOCAL_RANK" not in os.environ:
        sys.exit(launch(target))
    Path(target).mkdir(parents=True, exist_ok=True)
    main(Path(target))
