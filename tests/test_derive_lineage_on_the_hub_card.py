"""A derived dataset published to the Hub carries its lineage in the card's ``atdata`` block
(refs, CIDs, digests; no local paths)."""

from pathlib import Path

import pytest

from atdata import Index
from atdata.sources import open_source
from derive_transforms import count_words, frames
from hub_fixtures import hub
from hub_server import HubServer

__all__ = ["hub"]


def test_the_card_of_a_derived_dataset_carries_its_lineage(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    monkeypatch.delenv("ATDATA_INDEX_URL", raising=False)
    monkeypatch.delenv("ATDATA_CACHE_DIR", raising=False)
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    with Index() as index:
        source = index.write(frames(0, 20), "frames", maxcount=10)
        derived = index.derive("frames", count_words, "counts")
        index.publish("counts", to="hf://datasets/org/counts")
    with open_source("hf://datasets/org/counts/README.md").open() as f:
        meta = yaml.safe_load(f.read().decode().split("---")[1])
    lineage = meta["atdata"]["lineage"]
    assert lineage["parents"] == [{"ref": "frames@1", "cid": source.cid}]
    assert lineage["transform"]["name"] == "derive_transforms:count_words"
    assert lineage["shards"] == [
        {"inputs": [i.checksum.digest], "outputs": [o.checksum.digest]}
        for i, o in zip(source.shards, derived.shards, strict=True)
    ]
    assert str(tmp_path) not in yaml.safe_dump(meta)
