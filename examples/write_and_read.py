"""Write typed samples to shards and read them back as samples and as batches.

Run: uv run python examples/write_and_read.py [output-dir]
"""

import sys
import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np

import atdata
from atdata import NDArray


@atdata.packable
class Frame:
    """One camera frame with its label."""

    image: Annotated[NDArray[np.uint8], atdata.Shape(32, 32, 3)]
    label: int
    caption: str


def main(out: Path) -> None:
    rng = np.random.default_rng(0)
    frames = (
        Frame(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), i % 10, f"frame {i}")
        for i in range(1_000)
    )
    shards = atdata.write_samples(frames, str(out / "frames-%06d.tar"), maxcount=250).shard_infos
    print(f"wrote {sum(s.count for s in shards)} samples in {len(shards)} shards")
    for s in shards:
        print(f"  {Path(s.url).name}  {s.count} samples  sha256 {s.checksum.digest[:16]}...")

    ds = atdata.Dataset[Frame](str(out / "frames-{000000..000003}.tar"))
    print(f"{len(ds)} samples; sample 42 has label {ds[42].label} and caption {ds[42].caption!r}")

    for batch in ds.shuffled(seed=7, batch_size=128):
        print(
            f"first shuffled batch: images {batch.image.shape} {batch.image.dtype}, "
            f"labels {batch.label[:8]}..."
        )
        break

    evens = ds.filter(lambda f: f.label % 2 == 0)
    print(f"{sum(1 for _ in evens.ordered())} frames have an even label")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
