"""Find samples by their fields without reading the dataset: manifests and ``Dataset.where``.

Every shard ``write_samples`` writes gets a manifest beside it (``<shard>.manifest``): the range,
value counts and nulls of each scalar field, and a column block of those fields. A query skips
the shards whose manifests rule it out and, in the others, reads only the matching samples.
"""

import os
from typing import Annotated

import numpy as np

import atdata
from atdata import NDArray


@atdata.packable
class Clip:
    label: Annotated[int, atdata.Indexed()]  # marked fields are the ones summarised
    score: Annotated[float, atdata.Indexed()]
    name: Annotated[str, atdata.Indexed()]
    audio: NDArray[np.float32]  # arrays are never summarised


rng = np.random.default_rng(0)
clips = [
    Clip(
        label=i // 100,
        score=float(rng.random()),
        name=f"clip{i:04d}",
        audio=np.zeros(256, np.float32),
    )
    for i in range(1000)
]
os.makedirs("out", exist_ok=True)
ds = atdata.write_samples(clips, "out/clips-%06d.tar", maxcount=100)  # sorted by label: 10 shards

f = ds.fields
hits = ds.where((f.label == 3) & (f.score > 0.5))  # a Dataset: ordered, shuffled, batches, torch
found = list(hits)  # 9 of the 10 shards are never opened: their label range excludes 3
print(
    f"label 3 with score > 0.5: {len(found)} samples, all label 3: {all(c.label == 3 for c in found)}"
)

print("count from the manifests alone:", ds.count("label == 3 and score > 0.5"))
print("one clip by name:", [c.name for c in ds.where("name == 'clip0042'")])
print("scores of label 9:", len(ds.where("label == 9").select(["score"])["score"]), "values")
for batch in hits.shuffled(seed=1, batch_size=16):
    print("a shuffled batch of", len(batch), "clips, audio", batch.audio.shape)
    break
