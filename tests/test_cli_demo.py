"""``atdata demo`` does the main job end to end in the default index, and again as a new version."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from atdata.cli.app import app
from atdata.demo import DemoImage, Thumbnail, make_samples, run_demo
from atdata.index import Index
from atdata.lens import default_registry

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("ATDATA_HOME", str(home))
    return home


def test_demo_writes_loads_views_and_verifies_in_the_default_index(home: Path) -> None:
    result = runner.invoke(app, ["demo", "--count", "600"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "demo@1" in out
    assert "600 DemoImage samples" in out
    assert "load_dataset('@local/demo@1', split='train')" in out
    assert "rebuilt from the stored schema" in out
    assert "(256, 32, 32, 3)" in out
    assert "thumbnail: DemoImage -> Thumbnail" in out
    assert "shards match their sha256" in out
    assert str(home / "index.db") in out
    assert "writing 600 samples" in result.stderr  # the steps go to stderr

    with Index() as index:
        (entry,) = index.history("demo")
        assert entry.count == 600
        assert all(url.startswith(str(home / "data" / "demo" / "1")) for url in entry.urls)
        assert entry.schema_ref == "atdata://local/schema/DemoImage@1.0.0"

    again = runner.invoke(app, ["demo", "--count", "600", "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)  # nothing but JSON on stdout
    assert data["ok"] is True
    assert (data["ref"], data["versions"]) == ("demo@2", [1, 2])
    assert data["loaded_type"] == "atdata.rebuilt.DemoImage"
    assert data["loaded_type_is_rebuilt"] is True
    assert data["batch_image_shape"] == [256, 32, 32, 3]
    assert data["view_image_shape"] == [8, 8, 3]
    assert data["view_samples"] == 600
    assert data["problems"] == []
    assert data["labels_seen"] == 10
    assert again.stderr == ""


def test_run_demo_is_importable_and_takes_an_index(tmp_path: Path) -> None:
    written: list[int] = []
    stages: list[str] = []
    with Index(home=tmp_path) as index:
        result = run_demo(
            index, name="team/demo", count=300, progress=written.append, stage=stages.append
        )
        assert index.get("team/demo").count == 300
    assert sum(written) == 300
    assert len(stages) == 4
    assert result.ok
    assert result.shards == 1
    assert result.index_path == str(tmp_path / "index.db")


def test_the_demo_lens_stays_in_its_own_registry() -> None:
    sample = next(make_samples(1))
    assert isinstance(sample, DemoImage)
    assert all(ln.source is not DemoImage for ln in default_registry.lenses)
    from atdata.demo import registry

    view = registry.find(DemoImage, Thumbnail).get(sample)
    assert view.image.shape == (8, 8, 3)
    assert (view.image == sample.image[::4, ::4]).all()


def test_demo_rejects_a_bad_name(home: Path) -> None:
    result = runner.invoke(app, ["demo", "--name", "Bad Name"])
    assert result.exit_code == 2
