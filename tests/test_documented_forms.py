"""The documented forms run as written: the README quickstart, ``write_samples`` to one path,
``LocalDiskStore()``, ``S3DataStore(credentials, bucket=...)`` and ``load_dataset(streaming=)``."""

from pathlib import Path

import numpy as np
import pytest

import atdata
from atdata.errors import SchemaError, StoreError
from atdata.stores.credentials import read_env_file
from atdata.stores.s3 import S3DataStore
from readme_blocks import README, python_blocks

pytest_plugins = ["s3_backends"]  # the `s3` fixture: moto and rclone on loopback


@atdata.packable
class Row:
    i: int
    name: str


def rows(n: int) -> list[Row]:
    return [Row(i, f"r{i}") for i in range(n)]


def test_the_readme_quickstart_runs_as_written(home: Path, tmp_path: Path) -> None:
    block = python_blocks("## 60-second quickstart")[0]
    scope: dict[str, object] = {"__name__": "quickstart"}
    exec(compile(block, str(README), "exec"), scope)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tar")) == [
        f"frames-00000{i}.tar" for i in range(4)
    ]
    loaded = scope["ds"]
    assert isinstance(loaded, atdata.Dataset) and len(loaded) == 10_000
    assert (home / "data").is_dir() and any((home / "data").rglob("*.tar"))


def test_write_samples_to_one_path_returns_a_dataset_over_that_file(home: Path) -> None:
    samples = rows(5)
    ds = atdata.write_samples(samples, "output/data.tar")
    assert isinstance(ds, atdata.Dataset) and ds.sample_type is Row
    assert [p.name for p in Path("output").iterdir() if p.suffix == ".tar"] == ["data.tar"]
    assert list(ds) == samples
    (info,) = ds.shard_infos
    assert info.url == "output/data.tar" and info.count == 5
    assert info.size == Path("output/data.tar").stat().st_size and len(info.checksum.digest) == 64
    assert atdata.Dataset[Row]("output/data.tar")[3] == samples[3]


def test_write_samples_rolls_over_to_a_derived_pattern(home: Path) -> None:
    ds = atdata.write_samples(rows(7), "output/data.tar", maxcount=3)
    assert [Path(s.url).name for s in ds.shard_infos] == [
        "data-000000.tar",
        "data-000001.tar",
        "data-000002.tar",
    ]
    assert [s.count for s in ds.shard_infos] == [3, 3, 1]
    assert not Path("output/data.tar").exists()
    assert [r.i for r in ds] == list(range(7))


def test_a_single_shard_write_leaves_other_files_alone(home: Path) -> None:
    Path("output").mkdir()
    Path("output/data-000000.tar").write_bytes(b"someone else's file")
    ds = atdata.write_samples(rows(2), "output/data.tar")
    assert Path("output/data-000000.tar").read_bytes() == b"someone else's file"
    assert [s.url for s in ds.shard_infos] == ["output/data.tar"]


def test_a_percent_pattern_still_works_and_returns_a_dataset(home: Path) -> None:
    ds = atdata.write_samples(rows(4), "output/p-%06d.tar", maxcount=2)
    assert [Path(s.url).name for s in ds.shard_infos] == ["p-000000.tar", "p-000001.tar"]
    assert len(ds) == 4 and ds.urls == [s.url for s in ds.shard_infos]
    dicts = atdata.write_samples([{"a": 1}, {"a": 2}], "output/d.tar")
    assert dicts.sample_type is atdata.DictSample and [d["a"] for d in dicts] == [1, 2]
    with pytest.raises(SchemaError, match="empty"):
        atdata.write_samples([], "output/none.tar")


def test_local_disk_store_defaults_to_the_index_data_directory(home: Path, tmp_path: Path) -> None:
    assert atdata.LocalDiskStore().root == (home / "data").resolve()
    index = atdata.Index(data_store=atdata.LocalDiskStore())
    entry = index.write(rows(3), name="rows")
    assert all(Path(s.url).is_relative_to((home / "data").resolve()) for s in entry.shards)
    other = atdata.Index(data_store=atdata.LocalDiskStore(), home=tmp_path / "elsewhere")
    other_entry = other.write(rows(2), name="rows")
    assert Path(other_entry.shards[0].url).is_relative_to(
        (tmp_path / "elsewhere" / "data").resolve()
    )


def test_load_dataset_accepts_streaming(home: Path) -> None:
    atdata.write_samples(rows(3), "d/train.tar")
    for streaming in (True, False):
        ds = atdata.load_dataset("d", Row, split="train", streaming=streaming)
        assert [r.i for r in ds] == [0, 1, 2]


def test_env_file_is_parsed_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    env = tmp_path / "s3.env"
    env.write_text(
        "# credentials for the test bucket\n"
        f"export AWS_ACCESS_KEY_ID=AKIDEXAMPLE  # inline comment\n"
        "AWS_SECRET_ACCESS_KEY='se cret#1'\n"
        'AWS_ENDPOINT_URL="http://127.0.0.1:9"\n'
        "\n"
        f"OTHER=$(touch {marker})\n"
        "AWS_REGION=eu-west-1\n"
    )
    values = read_env_file(env)
    assert values["AWS_SECRET_ACCESS_KEY"] == "se cret#1"
    assert values["OTHER"] == f"$(touch {marker})" and not marker.exists()
    store = S3DataStore(env, bucket="my-bucket")
    cfg = store.config
    assert (cfg.access_key_id, cfg.secret_access_key) == ("AKIDEXAMPLE", "se cret#1")
    assert (cfg.endpoint_url, cfg.region, store.bucket) == (
        "http://127.0.0.1:9",
        "eu-west-1",
        "my-bucket",
    )
    env.write_text("AWS_ACCESS_KEY_ID=x\nthis line leaks-secret-value\n")
    with pytest.raises(StoreError, match=r"s3\.env:2") as err:
        S3DataStore(env, bucket="my-bucket")
    assert "leaks-secret-value" not in str(err.value)


def test_credentials_dict_form() -> None:
    creds = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "endpoint": "http://h:1"}
    store = S3DataStore(creds, bucket="my-bucket")
    assert (store.config.access_key_id, store.config.endpoint_url) == ("a", "http://h:1")
    with pytest.raises(StoreError, match="AWS_SECRET_ACCESS_KEY"):
        S3DataStore({"AWS_ACCESS_KEY_ID": "a"}, bucket="my-bucket")
    with pytest.raises(StoreError, match="unknown S3 credentials key 'aws_key'"):
        S3DataStore(creds | {"aws_key": "zzz"}, bucket="my-bucket")
    assert S3DataStore("plain-bucket", "prefix").prefix == "prefix/"


@pytest.mark.services
def test_credentials_form_writes_through_a_real_s3_server(s3, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = s3.config
    env = tmp_path / ".env"
    env.write_text(
        f"AWS_ACCESS_KEY_ID={cfg.access_key_id}\nAWS_SECRET_ACCESS_KEY={cfg.secret_access_key}\n"
        f"AWS_ENDPOINT_URL={s3.endpoint}\nAWS_REGION={cfg.region or 'us-east-1'}\n"
    )
    base = cfg.replace(access_key_id=None, secret_access_key=None)
    store = S3DataStore(env, bucket=s3.bucket, config=base)
    index = atdata.Index(data_store=store)
    entry = index.write(rows(4), name="s3rows")
    assert entry.shards[0].url.startswith(f"s3://{s3.bucket}/")
    assert [r.i for r in index.load(entry, Row)] == [0, 1, 2, 3]
    assert np.array_equal([r.i for r in index.load(entry)], np.arange(4))
