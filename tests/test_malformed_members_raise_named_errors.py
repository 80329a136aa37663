"""Malformed members (missing or wrongly named, oversized, non-utf-8 text, bad JSON, bad class
labels, hostile ``.npy`` headers) end in a SchemaError naming the shard, the sample key and the
field, typed or not; ``on_error="skip"``/``"warn"`` keep the good samples; nothing is allocated
in proportion to a size it has not seen."""

import io
import tarfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata import AtdataWarning, Dataset, SchemaError


@atdata.packable
class Row:
    caption: str = atdata.member("txt")
    label: int = atdata.member("cls")
    meta: dict[str, Any] = atdata.member("json")
    vec: NDArray[np.float32] | None = atdata.member("npy", default=None)


def _good(i: int) -> dict[str, bytes]:
    return {"txt": f"row {i}".encode(), "cls": str(i).encode(), "json": b'{"i": %d}' % i}


def _tar(path: Path, groups: list[dict[str, bytes]]) -> str:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for i, parts in enumerate(groups):
            for ext, body in parts.items():
                info = tarfile.TarInfo(f"s{i:03d}.{ext}")
                info.size = len(body)
                tf.addfile(info, io.BytesIO(body))
    return str(path)


HUGE_NPY = (
    b"\x93NUMPY\x01\x00"
    + (b"{'descr': '<f4', 'fortran_order': False, 'shape': (60000, 60000, 3), }").ljust(118)
    + b"\n"
    + b"\x00" * 16
)

BAD = {
    "wrong extension": ({"text": b"row", "cls": b"1", "json": b"{}"}, r"\.txt"),
    "missing member": ({"txt": b"row", "json": b"{}"}, r"\.cls"),
    "non-utf-8 text": ({**_good(1), "txt": b"\xff\xfe caption"}, "utf-8"),
    "bad json": ({**_good(1), "json": b'{"i": '}, "JSON"),
    "json that is not a dict": ({**_good(1), "json": b"[1, 2]"}, r"\$\.meta"),
    "bad class label": ({**_good(1), "cls": b"seven"}, "not a int"),
    "class label too long": ({**_good(1), "cls": b"1" * 100}, "not a int"),
    "not an npy": ({**_good(1), "npy": b"\x00" * 40}, r"\.npy"),
    "npy header bigger than its bytes": ({**_good(1), "npy": HUGE_NPY}, "bytes"),
    "deeply nested json": (
        {**_good(1), "json": b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"},
        "JSON",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_member_is_named_and_skippable(tmp_path: Path, case: str) -> None:
    bad, pattern = BAD[case]
    path = _tar(tmp_path / "bad.tar", [_good(0), bad, _good(2)])
    ds = Dataset[Row](path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)
        with pytest.raises(SchemaError, match=pattern) as info:
            list(ds.ordered())
        assert "s001" in str(info.value) and path in str(info.value)
        with pytest.raises(SchemaError, match="s001"):
            ds[1]
        with pytest.raises(SchemaError, match="s001"):
            list(ds.shuffled(seed=0, batch_size=3))
        skipped = Dataset[Row](path, on_error="skip")
        assert [r.label for r in skipped.ordered()] == [0, 2]
        assert sorted(int(x) for b in skipped.shuffled(seed=1, batch_size=2) for x in b.label) == [
            0,
            2,
        ]
    with pytest.warns(AtdataWarning, match="s001"):
        assert len(list(Dataset[Row](path, on_error="warn").ordered())) == 2


@pytest.mark.parametrize("case", ["non-utf-8 text", "bad json", "bad class label", "not an npy"])
def test_schema_free_reads_name_the_bad_member_too(tmp_path: Path, case: str) -> None:
    path = _tar(tmp_path / "bad.tar", [_good(0), BAD[case][0], _good(2)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)
        with pytest.raises(SchemaError, match="s001"):
            list(Dataset(path).ordered())
        with pytest.raises(SchemaError, match="s001"):
            Dataset(path)[1]
        assert [s["cls"] for s in Dataset(path, on_error="skip").ordered()] == [0, 2]


def test_a_member_over_the_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATDATA_MAX_MEMBER_BYTES", "4096")
    big = {**_good(1), "txt": b"x" * 10_000}
    path = _tar(tmp_path / "big.tar", [_good(0), big, _good(2)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AtdataWarning)
        with pytest.raises(SchemaError, match="ATDATA_MAX_MEMBER_BYTES") as info:
            list(Dataset[Row](path).ordered())
        assert "s001" in str(info.value) and "$.caption" in str(info.value)
        with pytest.raises(SchemaError, match="ATDATA_MAX_MEMBER_BYTES"):
            Dataset(path)[1]
        assert [r.label for r in Dataset[Row](path, on_error="skip").ordered()] == [0, 2]


def test_member_declarations_are_checked(tmp_path: Path) -> None:
    with pytest.raises(atdata.InvalidArgumentError):
        atdata.member("../etc")
    with pytest.raises(atdata.InvalidArgumentError):
        atdata.member("a/b")
    record = Row.__atdata_schema__.to_dict()
    record["fields"][0]["members"] = ["x/../y"]
    with pytest.raises(SchemaError, match="member extensions"):
        atdata.Schema.from_dict(record)
