"""``len``, ``ds[i]``, ``ds.get(key)`` and iteration (ordered and shuffled) agree on shards of
every layout atdata writes: msgpack samples, member-layout typed samples, and member-layout
DictSamples; with the sidecars written and without them (one scan, then the scan cache)."""

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import atdata
from atdata import AtdataWarning, Dataset, DictSample
from atdata.shards.offsets import OFFSETS_SUFFIX


@atdata.packable
class Packed:
    name: str
    label: int
    vec: NDArray[np.float32] | None = None


@atdata.packable
class Members:
    name: str = atdata.member("txt")
    label: int = atdata.member("cls")
    vec: NDArray[np.float32] | None = atdata.member("npy", default=None)
    blob: bytes | None = atdata.member("bin", default=None)


Row = tuple[str, int, "np.ndarray | None", bytes | None]

rows = st.lists(
    st.tuples(
        st.text(max_size=12),
        st.integers(-(2**40), 2**40),
        st.one_of(st.none(), st.integers(0, 6).map(lambda n: np.arange(n, dtype=np.float32))),
        st.one_of(st.none(), st.binary(max_size=900)),
    ),
    max_size=14,
)


def _samples(layout: str, data: list[Row]) -> list[Any]:
    if layout == "msgpack":
        return [Packed(n, lb, v) for n, lb, v, _b in data]
    if layout == "members":
        return [Members(n, lb, v, b) for n, lb, v, b in data]
    out = []
    for n, lb, v, b in data:
        d: dict[str, Any] = {"txt": n, "cls": lb}
        if v is not None:
            d["npy"] = v
        if b is not None:
            d["bin"] = b
        out.append(d)
    return out


def _view(sample: Any) -> tuple[Any, ...]:
    if isinstance(sample, DictSample):
        vec = sample.get("npy")
        return (
            sample["txt"],
            sample["cls"],
            None if vec is None else vec.tolist(),
            sample.get("bin"),
        )
    vec = sample.vec
    return (
        sample.name,
        sample.label,
        None if vec is None else vec.tolist(),
        getattr(sample, "blob", None),
    )


def _expected(layout: str, data: list[Row]) -> list[tuple[Any, ...]]:
    return [
        (n, lb, None if v is None else v.tolist(), None if layout == "msgpack" else b)
        for n, lb, v, b in data
    ]


@pytest.mark.parametrize("layout", ["msgpack", "members", "dict-members"])
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=rows, maxcount=st.integers(1, 5), drop_sidecars=st.booleans())
def test_every_access_path_agrees(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    layout: str,
    data: list[Row],
    maxcount: int,
    drop_sidecars: bool,
) -> None:
    if not data:
        return
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    # a fresh folder per example: hypothesis may run the same example twice
    folder = Path(tempfile.mkdtemp(prefix=f"{layout}-", dir=tmp_path))
    written = atdata.write_samples(
        _samples(layout, data),
        str(folder / "s-%06d.tar"),
        maxcount=maxcount,
        layout="members" if layout == "dict-members" else None,
    )
    if drop_sidecars:
        for url in written.urls:
            os.unlink(url + OFFSETS_SUFFIX)
    want = _expected(layout, data)
    for _ in range(2):  # the second time through the scan cache when the sidecars are gone
        ds = Dataset(written.urls, written.sample_type)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AtdataWarning)
            assert len(ds) == len(want)
            assert [_view(s) for s in ds.ordered()] == want
            for i in range(len(want)):
                assert _view(ds[i]) == want[i]
                assert _view(ds.get(f"{i:08d}")) == want[i]
            shuffled = [_view(s) for s in ds.shuffled(seed=len(want))]
            assert sorted(map(repr, shuffled)) == sorted(map(repr, want))
            start = len(want) // 2
            assert [_view(s) for s in ds.ordered(start=start)] == want[start:]
