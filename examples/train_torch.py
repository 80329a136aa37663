"""Train a small model with PyTorch: DataLoader workers, checkpoints that hold the data position,
and an exact resume after the job stops mid-epoch.

Run: uv run python examples/train_torch.py [--feed] [output-dir]

``--feed`` reads with ``atdata.torch.feed.feed`` (reader threads in this process, batches in pinned
memory and copied to the GPU when there is one) instead of DataLoader worker processes.
"""

import argparse
import tempfile
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch

import atdata
import atdata.torch
from atdata import NDArray
from atdata.torch.feed import feed

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
EPOCHS = 2


@atdata.packable
class Digit:
    """An 8x8 image of one of four classes."""

    image: Annotated[NDArray[np.float32], atdata.Shape(8, 8)]
    label: int


def write_data(out: Path) -> atdata.Dataset[Digit]:
    rng = np.random.default_rng(0)
    templates = rng.random((4, 8, 8), dtype=np.float32)
    labels = rng.integers(0, 4, 2_000)
    samples = (
        Digit(templates[y] + 0.3 * rng.random((8, 8), dtype=np.float32), int(y)) for y in labels
    )
    atdata.write_samples(samples, str(out / "digits-%06d.tar"), maxcount=500)
    return atdata.Dataset[Digit](str(out / "digits-{000000..000003}.tar"))


def train(ds: atdata.Dataset[Digit], ckpt: Path, *, use_feed: bool, stop_at: int = 0) -> None:
    """Train for EPOCHS epochs, checkpointing every 10 steps; resume from ``ckpt`` if it exists."""
    tds = ds.to_torch(batch_size=64, shuffle=True, seed=0)
    batches: Any
    if use_feed:
        batches = feed(tds, device=DEVICE, threads=2)
    else:
        batches = atdata.torch.loader(tds, num_workers=2, pin_memory=DEVICE == "cuda")
    model = torch.nn.Linear(64, 4).to(DEVICE)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    step, first_epoch = 0, 0
    if ckpt.exists():
        state = torch.load(ckpt)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        batches.load_state_dict(state["data"])  # the exact position in the epoch
        step, first_epoch = state["step"], state["data"]["epoch"]
        print(
            f"resumed at step {step}: epoch {first_epoch}, "
            f"{state['data']['position']} of {len(ds)} samples done"
        )
    for epoch in range(first_epoch, EPOCHS):
        batches.set_epoch(epoch)  # a new shuffle each epoch (keeps a loaded position)
        done = batches.state_dict()["position"]  # samples of this epoch trained before a resume
        correct = seen = 0
        for batch in batches:
            x = batch["image"].to(DEVICE, non_blocking=True).flatten(1)
            y = batch["label"].to(DEVICE, non_blocking=True)
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if step % 10 == 0:
                torch.save(
                    {
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "data": batches.state_dict(),
                        "step": step,
                    },
                    ckpt,
                )
            if step == stop_at:
                print(
                    f"stopped at step {step} (as if killed); checkpoint at step {step - step % 10}"
                )
                return
        print(
            f"epoch {epoch}: {done + seen} samples ({done} before the resume), "
            f"loss {loss.item():.3f}, accuracy {correct / seen:.2f}"
        )
    print(f"trained {EPOCHS} epochs in {step} steps on {DEVICE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feed", action="store_true", help="read with atdata.torch.feed")
    parser.add_argument("out", nargs="?", type=Path)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="atdata-train-"))
    out.mkdir(parents=True, exist_ok=True)
    ds = write_data(out)
    ckpt = out / "checkpoint.pt"
    ckpt.unlink(missing_ok=True)
    train(ds, ckpt, use_feed=args.feed, stop_at=13)  # stops mid-epoch 0
    train(ds, ckpt, use_feed=args.feed)  # a new run picks up at step 10's checkpoint


if __name__ == "__main__":
    main()
