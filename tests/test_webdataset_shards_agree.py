"""Plain WebDataset shards: ``len``, ``ds[i]``, ``get(key)`` and iteration agree on every shard.

A sample is a key group (``000001.jpg``, ``000001.cls``, ... sharing a key), as schema-free
iteration yields it. Shards are made of random member layouts by Python's ``tarfile`` (long
names become PAX headers), by the real ``webdataset.TarWriter``, and mixed with ``.msgpack``
members; each is read without a sidecar (one scan) and with the sidecar atdata writes for it
(``Index.insert(copy=True)`` path: a version-2 offset index with group spans).
"""

import io
import json
import tarfile
import warnings
from pathlib import Path

import msgpack
import pytest
import webdataset as wds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atdata import AtdataWarning, Dataset, DictSample
from atdata.members import decode_member
from atdata.shards.offsets import OFFSETS_SUFFIX, OffsetIndex
from atdata.shards.reader import scan_offsets
from atdata.sources import open_source

SUFFIXES = ["jpg", "cls", "json", "msgpack", "seg.png", "txt"]

Group = tuple[str, dict[str, bytes]]


@st.composite
def layouts(draw: st.DrawFn) -> list[Group]:
    n = draw(st.integers(0, 12))
    groups: list[Group] = []
    long_names = draw(st.booleans())
    for i in range(n):
        prefix = draw(st.sampled_from(["", "d/", "a/b/"]))
        key = f"{prefix}{i:06d}" + ("x" * 100 if long_names and i % 3 == 0 else "")
        suffixes = draw(st.lists(st.sampled_from(SUFFIXES), min_size=1, max_size=4, unique=True))
        parts: dict[str, bytes] = {}
        for sfx in suffixes:
            if sfx == "msgpack":
                parts[sfx] = msgpack.packb({"i": i, "v": draw(st.binary(max_size=40))})
            elif sfx == "txt":
                parts[sfx] = draw(st.text(max_size=200)).encode("utf-8")
            elif sfx == "cls":
                parts[sfx] = str(draw(st.integers(-(10**9), 10**9))).encode()
            elif sfx == "json":
                value = draw(st.dictionaries(st.text(max_size=5), st.integers(), max_size=4))
                parts[sfx] = json.dumps(value).encode()
            else:
                parts[sfx] = draw(st.binary(max_size=700))
        groups.append((key, parts))
    return groups


def _tar_with_tarfile(groups: list[Group]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for key, parts in groups:
            for sfx, body in parts.items():
                info = tarfile.TarInfo(f"{key}.{sfx}")
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


def _tar_with_webdataset(groups: list[Group]) -> bytes:
    out = io.BytesIO()
    with wds.TarWriter(out) as writer:
        for key, parts in groups:
            writer.write({"__key__": key, **parts})
    return out.getvalue()


def _expected(parts: dict[str, bytes]) -> dict[str, object]:
    data: dict[str, object] = {}
    for sfx, body in parts.items():
        if sfx == "msgpack":
            data.update(msgpack.unpackb(body))
        else:
            data[sfx] = decode_member(sfx, body)  # text, class labels, JSON decoded
    return data


def _check_agreement(path: Path, groups: list[Group]) -> None:
    ds = Dataset(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)
        iterated = list(ds.ordered())
        assert len(ds) == len(iterated) == len(groups)
        for i, ((key, parts), sample) in enumerate(zip(groups, iterated, strict=True)):
            want = _expected(parts)
            assert isinstance(sample, DictSample)
            assert sample.to_dict() == want, (i, key)
            assert ds[i].to_dict() == want, (i, key)
            assert ds[i - len(groups)].to_dict() == want
            assert ds.get(key).to_dict() == want, key
        with pytest.raises(IndexError):
            ds[len(groups)]
        start = len(groups) // 2
        resumed = [s.to_dict() for s in ds.ordered(start=start)]
        assert resumed == [_expected(p) for _, p in groups[start:]]


@pytest.mark.parametrize("writer", [_tar_with_tarfile, _tar_with_webdataset])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(groups=layouts())
def test_len_random_access_and_iteration_agree(tmp_path: Path, writer, groups) -> None:  # type: ignore[no-untyped-def]
    if writer is _tar_with_webdataset and any(len(k) > 90 for k, _ in groups):
        groups = [(k[:20], p) for k, p in groups]  # (its headers hold short names only)
    path = tmp_path / f"w-{abs(hash(str(groups))) % 10**9}.tar"
    path.write_bytes(writer(groups))
    _check_agreement(path, groups)  # no sidecar: one scan
    index = scan_offsets(open_source(str(path)))
    Path(str(path) + OFFSETS_SUFFIX).write_bytes(index.to_bytes())
    again = OffsetIndex.from_bytes(Path(str(path) + OFFSETS_SUFFIX).read_bytes(), "test")
    assert again.keys == index.keys
    _check_agreement(path, groups)  # through the sidecar


def test_a_plain_webdataset_shard_has_a_length_and_random_access(tmp_path: Path) -> None:
    groups: list[Group] = [
        (f"{i:06d}", {"jpg": bytes([i]) * 10, "cls": str(i).encode(), "json": b"{}"})
        for i in range(5)
    ]
    path = tmp_path / "plain-000000.tar"
    path.write_bytes(_tar_with_webdataset(groups))
    ds = Dataset(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)
        assert len(ds) == 5
        assert ds[0]["cls"] == 0 and ds[4]["jpg"] == b"\x04" * 10
        assert ds.get("000003")["cls"] == 3 and ds[1]["json"] == {}


def test_shards_atdata_writes_keep_their_version_1_sidecars(tmp_path: Path) -> None:
    from atdata import write_samples

    (info,) = write_samples(
        [DictSample(i=i) for i in range(3)], str(tmp_path / "s-%06d.tar")
    ).shard_infos
    raw = msgpack.unpackb(Path(info.url + OFFSETS_SUFFIX).read_bytes())
    assert raw["version"] == 1 and "starts" not in raw
    assert scan_offsets(open_source(info.url)).starts is None


def test_a_webdataset_shard_copied_into_an_index_reads_through_its_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from atdata.index import Index

    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    groups: list[Group] = [
        (f"{i:06d}", {"jpg": bytes([i]) * (i + 1), "cls": str(i).encode()}) for i in range(7)
    ]
    path = tmp_path / "plain-000000.tar"
    path.write_bytes(_tar_with_webdataset(groups))
    with Index() as index, warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)
        entry = index.insert([str(path)], name="plain", copy=True)
        assert entry.count == 7
        raw = msgpack.unpackb(Path(entry.urls[0] + OFFSETS_SUFFIX).read_bytes())
        assert raw["version"] == 2
    with Index() as index, warnings.catch_warnings():
        warnings.simplefilter("error", AtdataWarning)  # the sidecar is used: no scan
        ds = index.load("plain")
        assert len(ds) == 7
        assert ds[6]["cls"] == 6 and ds.get("000002")["jpg"] == b"\x02" * 3
        assert [s["cls"] for s in ds.ordered()] == list(range(7))


def test_a_group_sidecar_that_splits_a_group_is_not_trusted(tmp_path: Path) -> None:
    groups: list[Group] = [
        (f"{i:06d}", {"cls": str(i).encode(), "jpg": bytes([i]) * 600}) for i in range(4)
    ]
    path = tmp_path / "split-000000.tar"
    path.write_bytes(_tar_with_webdataset(groups))
    index = scan_offsets(open_source(str(path)))
    assert index.starts is not None and index.ends is not None
    # sample 0 claims only its first member; the next sample's span takes the rest of it
    first_end = int(index.header_offsets[0]) + 1024
    ends = index.ends.copy()
    starts = index.starts.copy()
    ends[0], starts[1] = first_end, first_end
    tampered = OffsetIndex(
        index.keys, index.header_offsets, index.sizes, index.shard_size, None, starts, ends
    )
    Path(str(path) + OFFSETS_SUFFIX).write_bytes(tampered.to_bytes())
    ds = Dataset(str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ds[0].to_dict() == _expected(groups[0][1])
        assert ds.get("000001").to_dict() == _expected(groups[1][1])
    assert any(".idx" in str(w.message) for w in caught)
