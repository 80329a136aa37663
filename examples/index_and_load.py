"""Keep datasets in an index: versions, schemas, loading by name without the class, checksums.

``Index()`` with no arguments is SQLite at ``$ATDATA_HOME/index.db`` with shards under
``$ATDATA_HOME/data`` (``~/.atdata`` by default). This example uses a temporary home so that it
leaves nothing behind; pass a directory to keep the index and look at it with the CLI:
``ATDATA_HOME=<dir> atdata ls``.

Run: uv run python examples/index_and_load.py [home-dir]
"""

import sys
import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np

import atdata
from atdata import NDArray
from atdata.dataset_refs import load_dataset
from atdata.index import Index


class Measurement(atdata.PackableSample):
    """One reading of a 16-channel sensor."""

    sensor: str
    channels: Annotated[NDArray[np.float32], atdata.Shape(16)]
    ok: bool


def measurements(n: int, seed: int) -> list[Measurement]:
    rng = np.random.default_rng(seed)
    return [
        Measurement(f"s{i % 4}", rng.normal(size=16).astype(np.float32), bool(i % 9))
        for i in range(n)
    ]


def main(home: Path) -> None:
    with Index(home=home) as index:
        first = index.write(measurements(1_000, seed=1), name="sensors/run", maxcount=400)
        second = index.write(measurements(1_500, seed=2), name="sensors/run", maxcount=400)
        print(f"wrote {first.ref} ({first.count} samples) and {second.ref} ({second.count})")
        print(
            f"versions: {[e.ref for e in index.history('sensors/run')]}; schema {second.schema_ref}"
        )

        # Loading by name needs no Python class: the type is rebuilt from the stored schema.
        ds = load_dataset("@local/sensors/run@1", split="train", index=index)
        sample = ds[0]
        print(
            f"loaded sensors/run@1 without a class: {type(sample).__name__} from "
            f"{type(sample).__module__}, channels {sample.channels.dtype}{sample.channels.shape}"
        )
        batch = next(iter(ds.shuffled(seed=0, batch_size=100)))
        print(f"a shuffled batch: channels {batch.channels.shape}, {sum(batch.ok)} ok readings")

        # With the class, samples are instances of it.
        typed = index.load("sensors/run", Measurement)
        print(f"latest as Measurement: {len(typed)} samples, first sensor {typed[0].sensor!r}")

        index.label("baseline", "sensors/run@1")
        print(f"label baseline -> {index.get_label('baseline').target}")

        problems = index.verify("sensors/run@2")
        print(f"verify sensors/run@2: {problems or 'all shards match'}")

        removed = index.remove("sensors/run@2")
        print(
            f"removed {[e.ref for e in removed]}; left {[e.ref for e in index.history('sensors/run')]}"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
