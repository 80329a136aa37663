"""The README's "Converting to and from HF datasets" example runs as written, in a fresh
directory (and its own Hugging Face cache)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Converting to and from HF datasets", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the section has no python code block"
    return match.group(1)


def test_the_hf_datasets_example_runs_as_written(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATDATA_", "HF_"))}
    env["ATDATA_HOME"] = str(tmp_path / "home")
    env["HF_HOME"] = str(tmp_path / "hf")
    env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", _example()],
        cwd=tmp_path,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Array3D(shape=(16, 16, 3), dtype='uint8') float16 (4,)" in result.stdout, result.stdout
    assert len(list((tmp_path / "from-hf").glob("data-*.tar"))) == 1
