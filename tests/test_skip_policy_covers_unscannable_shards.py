"""A shard with no offset sidecar whose scan fails (truncated, or not a tar) is skipped whole
under ``on_error="skip"``/``"warn"`` in every epoch-planned mode (ordered and shuffled typed
reads, and the torch loader), and raises under ``"raise"``."""

import warnings
from pathlib import Path

import pytest
import webdataset as wds

import atdata
from atdata import AtdataWarning, Dataset, ShardError


@atdata.packable
class Note:
    text: str = atdata.member("txt")
    label: int = atdata.member("cls")


GOOD = sorted(f"t{s}{i}" for s in (0, 2) for i in range(4))


def _shards(root: Path, damage: str) -> list[str]:
    urls = []
    for s in range(3):
        path = root / f"notes-{s:06d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for i in range(4):
                sink.write({"__key__": f"k{s}_{i}", "txt": f"t{s}{i}", "cls": i})
        urls.append(str(path))
    data = Path(urls[1]).read_bytes()
    bad = data[:2600] if damage == "truncated" else data[:700] + b"\xff" * 300
    Path(urls[1]).write_bytes(bad)
    return urls


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ATDATA_CACHE_DIR", raising=False)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
@pytest.mark.parametrize("seed", [None, 0])
def test_skip_drops_the_unscannable_shard(tmp_path: Path, damage: str, seed: int | None) -> None:
    ds = Dataset[Note](_shards(tmp_path, damage), on_error="skip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)  # the scan warnings for missing sidecars
        reader = ds.ordered() if seed is None else ds.shuffled(seed=seed)
        assert sorted(n.text for n in reader) == GOOD


def test_warn_names_the_shard(tmp_path: Path) -> None:
    urls = _shards(tmp_path, "garbage")
    with pytest.warns(AtdataWarning, match=r"notes-000001\.tar.*skipping the shard"):
        got = sorted(n.text for n in Dataset[Note](urls, on_error="warn").shuffled(seed=1))
    assert got == GOOD


def test_raise_still_raises(tmp_path: Path) -> None:
    ds = Dataset[Note](_shards(tmp_path, "truncated"))
    with warnings.catch_warnings(), pytest.raises(ShardError, match=r"notes-000001\.tar"):
        warnings.simplefilter("ignore", AtdataWarning)
        list(ds.shuffled(seed=0))


@pytest.mark.parametrize("workers", [0, 2])
def test_torch_loader_skips_it(tmp_path: Path, workers: int) -> None:
    pytest.importorskip("torch")
    import atdata.torch

    ds = Dataset[Note](_shards(tmp_path, "truncated"), on_error="skip")
    tds = ds.to_torch(batch_size=2, shuffle=True, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)
        got = [t for b in atdata.torch.loader(tds, num_workers=workers) for t in b["text"]]
    assert sorted(got) == GOOD
