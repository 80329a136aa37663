"""``atdata preview`` shows image fields as format, size and mode (from the header), writes
thumbnails with ``--thumbnails DIR`` (only inside DIR, whatever the sample keys), and
``atdata inspect`` shows image field types; msgpack samples and member-layout shards alike."""

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest
from typer.testing import CliRunner

import atdata
from atdata import Image, ImageSpec
from atdata.cli.app import app

PIL = pytest.importorskip("PIL.Image")
wds = pytest.importorskip("webdataset")
runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:.*has no offset index:atdata.AtdataWarning")


def smooth(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.repeat(np.repeat(rng.integers(0, 256, (h // 8, w // 8, 3)), 8, 0), 8, 1).astype(
        np.uint8
    )


@atdata.packable
class Shot:
    image: Annotated[Image, ImageSpec(shape=(48, 64, 3), mode="RGB", format="jpeg")]
    label: int


def test_preview_shows_image_facts_and_writes_thumbnails(home: Path, tmp_path: Path) -> None:
    ds = atdata.write_samples(
        [Shot(image=Image.encode(smooth(i)), label=i) for i in range(3)], tmp_path / "s.tar"
    )
    url = ds.shard_infos[0].url
    done = runner.invoke(app, ["preview", url, "--json", "--thumbnails", str(tmp_path / "th")])
    assert done.exit_code == 0, done.output
    rows = json.loads(done.output)
    image = rows[0]["image"]
    assert image["image"] == "jpeg" and (image["width"], image["height"]) == (64, 48)
    assert image["mode"] == "RGB" and image["bytes"] > 100
    thumb = Path(image["thumbnail"])
    assert thumb.parent == tmp_path / "th"
    with PIL.open(thumb) as im:
        assert im.format == "PNG" and max(im.size) <= 128
    table = runner.invoke(app, ["preview", url])
    assert table.exit_code == 0 and "jpeg 64x48 RGB" in table.output


def test_thumbnails_stay_inside_the_directory_for_hostile_keys(home: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "w.tar")
    png = Image.encode(smooth(1), format="png").data
    with wds.TarWriter(url) as sink:
        sink.write({"__key__": "../../escape", "png": png, "cls": 1})
    out = tmp_path / "deep" / "th"
    done = runner.invoke(app, ["preview", url, "--json", "--thumbnails", str(out)])
    assert done.exit_code == 0, done.output
    (row,) = json.loads(done.output)
    written = Path(row["png"]["thumbnail"])
    assert written.parent == out and written.exists()
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["th"]


def test_a_bad_image_is_shown_not_raised(home: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "bad.tar")
    jpeg = Image.encode(smooth(2)).data
    with wds.TarWriter(url) as sink:
        sink.write({"__key__": "a", "jpg": jpeg[:40], "cls": 0})
    done = runner.invoke(app, ["preview", url, "--thumbnails", str(tmp_path / "t")])
    assert done.exit_code == 0, done.output
    assert "unreadable header" in done.output


def test_inspect_shows_image_field_types(home: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "m.tar")
    with wds.TarWriter(url) as sink:
        for i in range(2):
            sink.write({"__key__": f"k{i}", "jpg": Image.encode(smooth(i)).data, "cls": i})
    done = runner.invoke(app, ["inspect", url])
    assert done.exit_code == 0, done.output
    assert "image[jpeg, any mode]" in done.output
    ds = atdata.write_samples([Shot(image=Image.encode(smooth(0)), label=0)], tmp_path / "s.tar")
    index = atdata.Index()
    index.insert(ds, name="shots")
    shown = runner.invoke(app, ["inspect", "@local/shots"])
    assert shown.exit_code == 0, shown.output
    assert "image[jpeg, RGB, (48, 64, 3)]" in shown.output
