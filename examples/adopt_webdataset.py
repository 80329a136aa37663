"""Adopt an existing WebDataset dataset: type it, index it, load it, publish it.

Most WebDataset data is several members per sample (``000123.jpg``, ``000123.txt``,
``000123.cls``, ...), written by ``webdataset``, img2dataset or HF tooling. atdata reads such
shards as they are: declare which member each field comes from with ``atdata.member``, and
``len``, ``ds[i]``, ``ds.get(key)``, shuffling, batches and resuming all work on them.

This example first makes such a dataset with ``webdataset`` itself (Pillow-encoded JPEGs), as
you would already have it. Run: uv run python examples/adopt_webdataset.py
(needs ``pip install webdataset pillow`` besides atdata).
"""

import io
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds
from PIL import Image

import atdata
from atdata.dataset_refs import load_dataset
from atdata.index import Index


# 1. Type it: each field names the member extension(s) it is read from.
@atdata.packable
class Pet:
    """A photo with its caption, class label and metadata."""

    image: bytes = atdata.member("jpg", "jpeg", "png", "webp")
    caption: str = atdata.member("txt")
    label: int = atdata.member("cls")
    meta: dict[str, Any] = atdata.member("json")


def existing_dataset(folder: Path, n: int) -> str:
    """Shards as ``webdataset.ShardWriter`` writes them (what you already have)."""
    rng = np.random.default_rng(0)
    with wds.ShardWriter(str(folder / "pets-%06d.tar"), maxcount=5, verbose=0) as sink:
        for i in range(n):
            out = io.BytesIO()
            pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(out, "JPEG", quality=90)
            sink.write(
                {
                    "__key__": f"pet{i:05d}",
                    "jpg": out.getvalue(),
                    "txt": f"a pet, number {i}",
                    "cls": i % 3,
                    "json": {"width": 32, "height": 32},
                }
            )
    return str(folder / "pets-{000000..000002}.tar")


def main(home: Path) -> None:
    urls = existing_dataset(home, n=12)

    # The shards read typed as they are. They have no offset-index sidecar: each is scanned
    # once (an AtdataWarning says so) and the scan is cached under $ATDATA_HOME/offsets.
    warnings.filterwarnings("ignore", "shard .* has no offset index", atdata.AtdataWarning)
    ds = atdata.Dataset[Pet](urls)
    print(
        f"{len(ds)} samples; ds[7].caption = {ds[7].caption!r}; label of pet00004 = "
        f"{ds.get('pet00004').label}"
    )
    batch = next(iter(ds.shuffled(seed=0, batch_size=4)))
    print(f"a shuffled batch: labels {list(batch.label)}, keys {batch.keys}")

    # 2. Index it: the shards are copied into the store with checksums and offset indexes;
    #    the schema (with each field's member extensions) is recorded with the entry.
    with Index(home=home) as index:
        entry = index.insert(urls, name="pets", sample_type=Pet, copy=True)
        print(f"indexed {entry.ref}: {entry.count} samples in {len(entry.shards)} shards")

        # 3. Load it by name, with no class: the member layout comes from the stored schema.
        loaded = load_dataset("@local/pets", split="train", index=index)
        first = loaded[0]
        print(
            f"loaded @local/pets without a class: {len(loaded)} {type(first).__name__} samples, "
            f"labels {[s.label for s in loaded.ordered()][:6]}"
        )
        # The stored shards are still plain WebDataset: webdataset decodes them itself.
        pixels = next(iter(wds.WebDataset(entry.urls, shardshuffle=False).decode("rgb8")))["jpg"]
        print(f"webdataset reads the stored shards too: image {pixels.shape} {pixels.dtype}")

    # 4. Publish it to the atmosphere (needs an ATProto account; not run here):
    #    from atdata.atmosphere import AtmosphereSession
    #    session = AtmosphereSession.login("you.bsky.social", app_password)
    #    index.publish("pets", to=session)   # then: load_dataset("@you.bsky.social/pets")
    print("publish with: index.publish('pets', to=AtmosphereSession.login(handle, password))")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
