"""Writing, registering, versioning, reading and removing datasets through the Index."""

import multiprocessing
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from index_helpers import make_samples, open_index
from index_types import Point

import atdata
from atdata.errors import ConflictError, NotFoundError, SourceError
from atdata.index import DatasetEntry, Index, Provider
from atdata.stores import LocalDiskStore


def _files(root: Path) -> list[str]:
    """The files under ``root``, with each write id shown as ``<write>``."""
    paths = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return sorted(re.sub("/[0-9a-f]{16}/", "/<write>/", p) for p in paths)


def test_write_puts_shards_sidecars_and_a_complete_entry_in_the_store(
    index: Index, store: LocalDiskStore
) -> None:
    entry = index.write(
        make_samples(25),
        "team/points",
        maxcount=10,
        description="points",
        metadata={"source": "test"},
        tags=["a", "b"],
        license="MIT",
    )
    assert (entry.name, entry.version, entry.count) == ("team/points", 1, 25)
    assert [s.count for s in entry.shards] == [10, 10, 5]
    write_dir = Path(entry.urls[0]).parent  # <root>/<name>/<version>/<write id>
    assert write_dir.parent == store.root / "team/points/1"
    assert re.fullmatch("[0-9a-f]{16}", write_dir.name)
    assert entry.urls == [str(write_dir / f"points-{i:06d}.tar") for i in range(3)]
    assert _files(store.root) == sorted(
        f"team/points/1/<write>/points-{i:06d}.tar{sfx}"
        for i in range(3)
        for sfx in ("", ".idx", ".manifest")
    )
    for shard in entry.shards:
        assert shard.checksum.algorithm == "sha256"
        assert shard.size == os.path.getsize(shard.url)
    assert entry.cid.startswith("bafyrei")
    assert entry.schema_ref == "atdata://local/schema/Point@1.0.0"
    assert entry.uri == "atdata://local/dataset/team/points@1"
    got = index.get("team/points")
    assert got == entry
    assert (got.description, got.tags, got.license) == ("points", ("a", "b"), "MIT")
    assert dict(got.metadata) == {"source": "test"}


def test_every_write_makes_a_new_immutable_version(index: Index) -> None:
    first = index.write(make_samples(3), "points")
    second = index.write(make_samples(4, start=100), "points")
    assert (first.version, second.version) == (1, 2)
    assert index.get("points") == second
    assert index.get("points@latest") == second
    assert index.get("points@1") == first
    assert index.get("atdata://local/dataset/points@2") == second
    assert [e.version for e in index.history("points")] == [1, 2]
    assert [x.x for x in index.load("points@1", Point).ordered()] == [0, 1, 2]
    assert set(first.urls).isdisjoint(second.urls)


def test_loading_by_name_needs_no_user_class(index: Index) -> None:
    index.write(make_samples(5), "points")
    ds = index.load("points")
    samples = list(ds.ordered())
    assert type(samples[0]).__name__ == "Point"
    assert type(samples[0]) is not Point
    assert [(s.x, s.name) for s in samples] == [(i, f"p{i}") for i in range(5)]


def test_datasets_lists_the_latest_version_of_each_name_lazily(index: Index) -> None:
    index.write(make_samples(1), "b")
    index.write(make_samples(1), "a")
    index.write(make_samples(2), "a")
    index.write(make_samples(1), "a-b")
    lazy = index.datasets
    assert not isinstance(lazy, list)
    assert [(e.name, e.version) for e in lazy] == [("a", 2), ("a-b", 1), ("b", 1)]
    assert index.list_datasets() == list(index.datasets)


def test_cid_depends_on_content_not_on_name_or_location(index: Index, tmp_path: Path) -> None:
    a = index.write(make_samples(10), "one", maxcount=4)
    b = index.write(make_samples(10), "two", maxcount=4)
    c = index.write(make_samples(10, start=1), "one", maxcount=4)
    d = index.write(make_samples(10), "one", maxcount=5)
    assert a.cid == b.cid
    assert a.cid != c.cid  # other bytes
    assert a.cid != d.cid  # other shard boundaries
    copied = index.insert(a.urls, "copied", copy=True, sample_type=Point)
    assert copied.cid == a.cid
    assert index.get("one@1").cid == a.cid  # stable when read back


def test_insert_registers_existing_shards_in_place(index: Index, tmp_path: Path) -> None:
    infos = atdata.write_samples(
        make_samples(12), str(tmp_path / "ext" / "x-%06d.tar"), maxcount=5
    ).shard_infos
    entry = index.insert(str(tmp_path / "ext" / "x-{000000..000002}.tar"), "ext", sample_type=Point)
    assert entry.urls == [i.url for i in infos]
    assert [s.checksum.digest for s in entry.shards] == [i.checksum.digest for i in infos]
    assert [s.count for s in entry.shards] == [5, 5, 2]
    assert entry.count == 12 and entry.stored is False
    index.remove("ext")
    assert all(os.path.exists(i.url) for i in infos)  # not ours to delete


def test_insert_counts_shards_without_a_sidecar_or_with_a_stale_one(
    index: Index, tmp_path: Path
) -> None:
    infos = atdata.write_samples(
        make_samples(7), str(tmp_path / "x-%06d.tar"), maxcount=4
    ).shard_infos
    os.remove(infos[0].url + ".idx")
    Path(infos[1].url + ".idx").write_bytes(b"garbage")
    entry = index.insert([i.url for i in infos], "nosidecar")
    assert [s.count for s in entry.shards] == [4, 3]
    assert entry.schema_ref is None  # registered without a type: schema-free
    assert [d["x"] for d in index.load(entry).ordered()] == list(range(7))


def test_insert_a_dataset_object_takes_its_type(index: Index, tmp_path: Path) -> None:
    atdata.write_samples(make_samples(3), str(tmp_path / "x-%06d.tar"))
    ds = atdata.Dataset[Point](str(tmp_path / "x-000000.tar"))
    entry = index.insert(ds, "from-dataset")
    assert entry.schema_ref == "atdata://local/schema/Point@1.0.0"


def test_insert_with_copy_puts_shards_and_sidecars_in_the_store(
    index: Index, store: LocalDiskStore, tmp_path: Path
) -> None:
    infos = atdata.write_samples(
        make_samples(6), str(tmp_path / "src-%06d.tar"), maxcount=4
    ).shard_infos
    os.remove(infos[1].url + ".idx")
    entry = index.insert([i.url for i in infos], "copied", copy=True, sample_type=Point)
    assert entry.stored is True
    assert _files(store.root) == sorted(
        f"copied/1/<write>/copied-{i:06d}.tar{sfx}"
        for i in range(2)
        for sfx in ("", ".idx", ".manifest")  # manifests travel with their shards
    )
    assert [s.checksum.digest for s in entry.shards] == [i.checksum.digest for i in infos]
    assert len(index.load(entry, Point)) == 6  # uses the sidecars
    assert index.verify("copied") == []


def test_insert_refuses_store_shards_of_another_entry_without_copy(index: Index) -> None:
    entry = index.write(make_samples(3), "owner")
    with pytest.raises(ConflictError, match="copy=True"):
        index.insert(entry.urls, "alias")
    assert [e.name for e in index.datasets] == ["owner"]


def test_insert_of_missing_shards_records_nothing(index: Index, tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        index.insert(str(tmp_path / "missing.tar"), "missing")
    with pytest.raises(NotFoundError):
        index.get("missing")


def test_a_failed_write_leaves_no_entry_and_no_shards(index: Index, store: LocalDiskStore) -> None:
    def samples():  # type: ignore[no-untyped-def]
        yield from make_samples(5)
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError, match="producer failed"):
        index.write(samples(), "broken", maxcount=2)
    with pytest.raises(NotFoundError):
        index.get("broken")
    assert _files(store.root) == []
    assert index.gc() == []
    assert index.write(make_samples(1), "broken").version == 2  # versions are never reused


def test_writing_mixed_types_fails_cleanly(index: Index, store: LocalDiskStore) -> None:
    from index_types import Label

    with pytest.raises(atdata.SchemaError):
        index.write([Point(x=1, name="a"), Label(label=2)], "mixed")
    assert _files(store.root) == []
    with pytest.raises(ValueError, match="no samples"):
        index.write([], "empty")


def test_get_and_history_of_unknown_names_raise_not_found(index: Index) -> None:
    index.write(make_samples(1), "known")
    for ref in ("unknown", "known@2", "atdata://local/dataset/unknown"):
        with pytest.raises(NotFoundError, match="no dataset"):
            index.get(ref)
    with pytest.raises(NotFoundError):
        index.history("unknown")
    with pytest.raises(NotFoundError, match="no repository"):
        index.get("atdata://elsewhere/dataset/known")


def test_remove_deletes_the_entry_then_its_shards(index: Index, store: LocalDiskStore) -> None:
    v1 = index.write(make_samples(2), "team/rm")
    v2 = index.write(make_samples(3), "team/rm")
    removed = index.remove("team/rm@1")
    assert removed == [v1]
    assert not any(os.path.exists(u) for u in v1.urls)
    assert all(os.path.exists(u) for u in v2.urls)
    assert index.get("team/rm") == v2
    index.remove("team/rm")  # the latest
    with pytest.raises(NotFoundError):
        index.get("team/rm")
    assert _files(store.root) == []
    assert not (store.root / "team").exists()  # empty name directories are pruned
    assert index.write(make_samples(1), "team/rm").version == 3


def test_remove_all_versions(index: Index, store: LocalDiskStore) -> None:
    for _ in range(3):
        index.write(make_samples(1), "many")
    index.write(make_samples(1), "other")
    with pytest.raises(ValueError):
        index.remove("many@2", all_versions=True)
    assert [e.version for e in index.remove("many", all_versions=True)] == [1, 2, 3]
    assert [e.name for e in index.datasets] == ["other"]
    assert _files(store.root) == [
        "other/1/<write>/other-000000.tar",
        "other/1/<write>/other-000000.tar.idx",
        "other/1/<write>/other-000000.tar.manifest",
    ]


def test_removing_the_latest_makes_the_previous_version_latest(index: Index) -> None:
    index.write(make_samples(1), "x")
    index.write(make_samples(2), "x")
    index.remove("x@2")
    assert index.get("x").version == 1


def test_an_interrupted_removal_is_finished_by_gc(
    index: Index, store: LocalDiskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = index.write(make_samples(2), "crashy")
    real = LocalDiskStore.delete_shards

    def failing(self: LocalDiskStore, name: str, version: int, urls: object) -> None:
        from atdata.errors import StoreError

        raise StoreError("disk went away")

    monkeypatch.setattr(LocalDiskStore, "delete_shards", failing)
    index.remove("crashy")
    with pytest.raises(NotFoundError):
        index.get("crashy")  # the entry is gone first ...
    assert all(os.path.exists(u) for u in entry.urls)  # ... the shards are still to delete
    monkeypatch.setattr(LocalDiskStore, "delete_shards", real)
    assert index.gc() == ["local:crashy@1"]
    assert _files(store.root) == []
    assert index.gc() == []


def test_gc_deletes_shards_of_a_write_whose_process_died(
    index: Index, store: LocalDiskStore
) -> None:
    from atdata.index import datasets as ds_ops

    repo = index.repository()
    version, write_id = ds_ops.reserve_version(repo, "orphan")
    (store.root / "orphan" / str(version) / write_id).mkdir(parents=True)
    (store.root / "orphan" / str(version) / write_id / "orphan-000000.tar").write_bytes(b"x" * 1024)
    assert index.gc() == []  # its writer (this process) is alive and it is young
    with repo.provider.transaction() as tx:
        record = tx.get("pending", "orphan#0000000001")
        assert record is not None
        tx.put("pending", "orphan#0000000001", {**record, "pid": 2**22 + 12345})  # no such pid
    assert index.gc() == ["local:orphan@1"]
    assert _files(store.root) == []


def test_verify_detects_a_flipped_byte(index: Index) -> None:
    entry = index.write(make_samples(20), "fragile", maxcount=8)
    assert index.verify("fragile") == []
    target = entry.shards[1]
    data = bytearray(Path(target.url).read_bytes())
    data[700] ^= 0x01
    Path(target.url).write_bytes(bytes(data))
    problems = index.verify("fragile")
    assert [p.url for p in problems] == [target.url]
    assert "sha256" in str(problems[0]) and target.checksum.digest in str(problems[0])
    os.remove(entry.shards[2].url)
    assert [p.url for p in index.verify("fragile")] == [target.url, entry.shards[2].url]


def test_entries_survive_reopening_the_index(
    provider_opener: Callable[[], Provider], tmp_path: Path
) -> None:
    first = open_index(provider_opener, tmp_path / "data")
    entry = first.write(make_samples(4), "kept")
    first.close()
    second = open_index(provider_opener, tmp_path / "data")
    try:
        got = second.get("kept")
        assert got == entry
        assert [s.x for s in second.load(got).ordered()] == [0, 1, 2, 3]
    finally:
        second.close()


def test_default_index_lives_in_atdata_home(_atdata_home: Path) -> None:
    with Index() as idx:
        entry = idx.write(make_samples(2), "home")
    assert (_atdata_home / "index.db").is_file()
    assert entry.urls[0].startswith(str((_atdata_home / "data").resolve()))
    with Index() as again:
        assert again.get("home").cid == entry.cid


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/abs",
        "../up",
        "a/../b",
        "a//b",
        "UPPER",
        "a b",
        "x@1",
        "123",
        "a/2",
        ".hidden",
        "a\\b",
        "a/b/c/d/e",
        "x" * 65,
        "é",
    ],
)
def test_bad_dataset_names_are_refused_before_anything_is_written(
    index: Index, store: LocalDiskStore, name: str
) -> None:
    with pytest.raises(ValueError):
        index.write(make_samples(1), name)
    assert _files(store.root) == []
    assert index.list_datasets() == []


def _write_many(opener: Callable[[], Provider], data: Path, worker: int, count: int) -> None:
    index = open_index(opener, data)
    try:
        for i in range(count):
            name = "shared" if i % 2 == 0 else f"own-{worker}"
            index.write(make_samples(1, start=worker * 1000 + i), name)
    finally:
        index.close()


def test_concurrent_writers_in_8_processes_lose_and_duplicate_nothing(
    index: Index, provider_opener: Callable[[], Provider], store: LocalDiskStore
) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_write_many, args=(provider_opener, store.root, w, 50)) for w in range(8)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=280)
        assert p.exitcode == 0
    shared = index.history("shared")
    assert [e.version for e in shared] == list(range(1, 201))
    entries: list[DatasetEntry] = list(shared)
    for w in range(8):
        own = index.history(f"own-{w}")
        assert [e.version for e in own] == list(range(1, 26))
        entries += own
    assert len(entries) == 400
    xs = sorted(index.load(e, Point)[0].x for e in entries)
    assert xs == sorted(w * 1000 + i for w in range(8) for i in range(50))
    assert len({u for e in entries for u in e.urls}) == 400
    assert all(os.path.exists(u) for e in entries for u in e.urls)


def test_index_load_takes_a_reference_or_an_entry(index: Index) -> None:
    entry = index.write(make_samples(3), "loadable")
    by_ref = index.load("loadable@1")
    by_entry = index.load(entry, Point)
    assert [s.x for s in by_ref.ordered()] == [0, 1, 2]
    assert by_entry.sample_type is Point
    assert by_ref.sample_type is index.get_schema_type(entry.schema_ref or "")


def test_bad_metadata_or_tags_are_refused_before_writing(
    index: Index, store: LocalDiskStore
) -> None:
    with pytest.raises(TypeError, match="metadata"):
        index.write(make_samples(1), "meta", metadata={"x": object()})
    with pytest.raises(TypeError, match="tags"):
        index.write(make_samples(1), "meta", tags="single")  # type: ignore[arg-type]
    assert _files(store.root) == []
    with pytest.raises(NotFoundError):
        index.get("meta")
