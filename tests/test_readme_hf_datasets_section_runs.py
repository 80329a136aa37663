"""The README's "Converting to and from HF datasets" example runs as written, in a fresh
directory (and its own Hugging Face cache)."""

from pathlib import Path

import pytest

from readme_blocks import python_blocks, run_block


def test_the_hf_datasets_example_runs_as_written(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    code = python_blocks("### Converting to and from HF datasets")[0]
    hf = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    out = run_block(code, tmp_path, tmp_path / "home", env=hf, drop_prefixes=("ATDATA_", "HF_"))
    assert "Array3D(shape=(16, 16, 3), dtype='uint8') float16 (4,)" in out, out
    assert len(list((tmp_path / "from-hf").glob("data-*.tar"))) == 1
