"""What the public API promises to a type checker, checked by mypy (strict), never run.

`uv run mypy tests/typecheck` (in CI's default job and `just typecheck`) and
`tests/test_public_types_check.py` check it; a wrong promise is a mypy error here.
"""

from typing import Any, assert_type

import numpy as np

import atdata
from atdata import NDArray
from atdata.atmosphere import AtmosphereSession, PublishedDataset
from atdata.hub import HubPublished


@atdata.packable
class Frame:
    image: NDArray[np.uint8]
    label: int


@atdata.packable
class Label:
    label: int


def load_dataset_overloads() -> None:
    assert_type(atdata.load_dataset("d", Frame, split="train"), atdata.Dataset[Frame])
    assert_type(atdata.load_dataset("d", split="train"), atdata.Dataset[Any])
    assert_type(atdata.load_dataset("d", Frame), atdata.DatasetDict[Frame])
    assert_type(atdata.load_dataset("d"), atdata.DatasetDict[Any])
    splits = atdata.load_dataset("d", Frame)
    assert_type(splits["train"], atdata.Dataset[Frame])


def dataset_iteration(ds: atdata.Dataset[Frame]) -> None:
    for sample in ds:
        assert_type(sample, Frame)
    assert_type(ds[0], Frame)
    assert_type(ds.get("key"), Frame)
    assert_type(ds.head(3), list[Frame])
    assert_type(ds.sample_type, type[Frame])
    assert_type(ds.filter(lambda s: s.label > 0), atdata.Dataset[Frame])
    assert_type(ds.map(lambda s: s.label), atdata.Dataset[int])


def batches(ds: atdata.Dataset[Frame]) -> None:
    assert_type(ds.ordered(batch_size=8), atdata.Loader[Frame])
    assert_type(ds.shuffled(seed=0, batch_size=8), atdata.Loader[Frame])
    # A Loader yields samples or SampleBatches depending on batch_size, so its items are Any for
    # now; typing them per mode (overloads on batch_size) would change this line.
    for item in ds.ordered(batch_size=8):
        assert_type(item, Any)


def sample_batches(batch: atdata.SampleBatch[Frame]) -> None:
    assert_type(len(batch), int)
    assert_type(batch.sample_type, type[Frame])
    assert_type(batch.samples, list[Frame])
    for sample in batch:
        assert_type(sample, Frame)


def lenses(ds: atdata.Dataset[Frame]) -> None:
    @atdata.lens
    def to_label(f: Frame) -> Label:
        return Label(label=f.label)

    assert_type(to_label, atdata.Lens[Frame, Label])
    assert_type(to_label.get(Frame(np.zeros(1, np.uint8), 1)), Label)
    assert_type(ds.as_type(Label), atdata.Dataset[Label])
    assert_type(atdata.current_registry().find(Frame, Label), atdata.Lens[Frame, Label])


def write_samples_returns(frames: list[Frame]) -> None:
    written = atdata.write_samples(frames, "out/frames.tar")
    assert_type(written[0], Frame)
    assert_type(written.shard_infos, list[atdata.ShardInfo])
    rows = atdata.write_samples([{"a": 1}], "out/rows.tar")
    assert_type(rows[0], atdata.DictSample)


def _publish_targets(index: atdata.Index, session: AtmosphereSession) -> None:
    assert_type(index.publish("x", to="hf://datasets/org/x"), HubPublished)
    assert_type(index.publish("x", to=session), PublishedDataset)
