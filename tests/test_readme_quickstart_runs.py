"""The README's quickstart runs as written, in a fresh directory and ``ATDATA_HOME``."""

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _quickstart() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## 60-second quickstart", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the quickstart has no python code block"
    return match.group(1)


def test_the_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    code = _quickstart()
    # what the block leaves behind, checked after it ran unchanged
    code += (
        "\nwritten = atdata.Dataset[Frame]('out/frames-{000000..000003}.tar')"
        "\nprint('shards', len(written.urls), 'samples', len(written))"
        "\nprint('loaded', len(ds), type(ds).__name__, next(iter(index.datasets)).name)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATDATA_")}
    env["ATDATA_HOME"] = str(tmp_path / "home")
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "shards 4 samples 10000" in result.stdout, result.stdout
    assert "loaded 10000 Dataset frames" in result.stdout, result.stdout
