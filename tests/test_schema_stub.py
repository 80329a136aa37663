"""``atdata schema stub``: a typed module for a stored schema that passes mypy --strict, round-trips
a dataset, and carries hostile schema text only as inert string literals."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import numpy as np
import pytest
from typer.testing import CliRunner

import atdata
from atdata import NDArray
from atdata.cli.app import app
from atdata.testing import make_samples

runner = CliRunner()


@atdata.packable
class Point:
    x: float
    tags: list[str]


@atdata.packable
class Scan:
    """A scan with a caption.\"\"\"; import os; os.system('echo pwned') # \\ \n"""

    image: Annotated[NDArray[np.uint8], atdata.Shape(8, 8, 3)]
    embedding: Annotated[NDArray[np.float32], atdata.Shape(None)]
    raw: NDArray[Any]
    label: int
    caption: str
    where: Point
    path: list[Point]
    scores: dict[str, float]
    payload: bytes
    note: str | None = None


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("scan_stub", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scan_stub"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for this module's runs: the first run analyses numpy, typing and atdata
    (most of its time), the later ones reuse that and check only the new files. mypy's cache is
    keyed by each file's path and hash, so nothing a run checks comes from a stale entry."""
    return tmp_path_factory.mktemp("mypy-cache")


def _mypy(cache: Path, cwd: Path, *files: str) -> subprocess.CompletedProcess[str]:
    """``mypy --strict`` (no config file) over ``files`` in ``cwd``, with the module's cache."""
    # fmt: off
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file=", f"--cache-dir={cache}",
         *files],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
    )
    # fmt: on


@pytest.fixture
def stub_file(tmp_index: atdata.Index, tmp_path: Path) -> Path:
    tmp_index.write(make_samples(Scan, 3, seed=1), name="scans")
    out = tmp_path / "scan_stub.py"
    result = runner.invoke(app, ["schema", "stub", "@local/scans", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_stub_declares_the_stored_fields_and_passes_mypy_strict(
    stub_file: Path, mypy_cache: Path
) -> None:
    text = stub_file.read_text()
    assert "image: Annotated[NDArray[np.uint8], atdata.Shape(8, 8, 3)]" in text
    assert "embedding: Annotated[NDArray[np.float32], atdata.Shape(None)]" in text
    assert "raw: NDArray[Any]" in text
    assert "path: list[Point]" in text and "note: str | None = None" in text
    user = stub_file.with_name("user_code.py")
    user.write_text(
        "import numpy as np\n"
        "from scan_stub import Point, Scan\n\n"
        "def first_pixel(s: Scan) -> int:\n"
        "    return int(s.image[0, 0, 0])\n\n"
        "def where_x(s: Scan) -> float:\n"
        "    return s.where.x + len(s.path)\n\n"
        "p = Point(x=1.0, tags=['a'])\n"
    )
    proc = _mypy(mypy_cache, stub_file.parent, stub_file.name, user.name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bad = stub_file.with_name("bad_code.py")
    bad.write_text("from scan_stub import Scan\n\ndef f(s: Scan) -> str:\n    return s.label\n")
    proc = _mypy(mypy_cache, stub_file.parent, bad.name)
    assert proc.returncode == 1 and "Incompatible return value" in proc.stdout


def test_hostile_schema_text_stays_inert(stub_file: Path) -> None:
    tree = ast.parse(stub_file.read_text())
    imported = {
        alias.name if isinstance(node, ast.Import) else f"{node.module}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"typing", "numpy", "atdata"}
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert all(ast.unparse(c.func) == "atdata.Shape" for c in calls)
    scan = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Scan")
    assert Scan.__doc__ and ast.get_docstring(scan, clean=False) == Scan.__doc__.strip()


def test_stub_round_trips_a_dataset(
    stub_file: Path, tmp_path: Path, tmp_index: atdata.Index
) -> None:
    stub = _import(stub_file)
    try:
        assert atdata.Schema.from_type(stub.Scan).fields == atdata.Schema.from_type(Scan).fields
        originals = make_samples(Scan, 4, seed=7)
        typed = [stub.Scan(**vars(s) | {"where": stub.Point(**vars(s.where)),
                                        "path": [stub.Point(**vars(p)) for p in s.path]})
                 for s in originals]  # fmt: skip
        ds = atdata.write_samples(typed, tmp_path / "out" / "scans.tar")
        assert ds.sample_type is stub.Scan
        tmp_index.write(ds, name="stubbed")
        untyped = atdata.load_dataset("@local/stubbed", split="train")  # no class: the schema
        again = atdata.load_dataset(str(tmp_path / "out"), stub.Scan, split="train")
        for got, back, want in zip(untyped, again, typed, strict=True):
            assert isinstance(back, stub.Scan) and isinstance(back.where, stub.Point)
            for sample in (got, back):
                assert sample.label == want.label and sample.caption == want.caption
                assert sample.note == want.note and sample.payload == want.payload
                assert sample.scores == want.scores and sample.where.tags == want.where.tags
                assert [p.x for p in sample.path] == [p.x for p in want.path]
                for name in ("image", "embedding", "raw"):
                    np.testing.assert_array_equal(getattr(sample, name), getattr(want, name))
    finally:
        sys.modules.pop("scan_stub", None)


def test_stub_to_stdout_of_a_stored_schema_ref(tmp_index: atdata.Index) -> None:
    ref = tmp_index.add_schema(Point)
    result = runner.invoke(app, ["schema", "stub", ref])
    assert result.exit_code == 0, result.output
    assert "class Point:" in result.stdout and "tags: list[str]" in result.stdout
    compile(result.stdout, "<stub>", "exec")  # parses; never imported by atdata


def test_stub_of_a_schema_inferred_from_shards_type_checks(
    tmp_path: Path, mypy_cache: Path
) -> None:
    atdata.write_samples([atdata.DictSample(n=None, x=1)], tmp_path / "n.tar")
    out = tmp_path / "inferred_stub.py"
    result = runner.invoke(app, ["schema", "stub", str(tmp_path / "n.tar"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "n: Any | None" in text and "from typing import Any" in text
    proc = _mypy(mypy_cache, tmp_path, out.name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
