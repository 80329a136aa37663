"""The README's "Derived datasets and lineage" example runs as written, in a fresh
``ATDATA_HOME``, and shows what the section says: lineage, one failure, an incremental plan."""

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Derived datasets and lineage", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the section has no python code block"
    return match.group(1)


def test_the_readme_derive_example_runs_as_written(tmp_path: Path) -> None:
    code = _example() + "\nprint('second', counts.ref, counts.count)\n"
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
    lines = result.stdout.splitlines()
    assert lines[0] == "counts@1 frames@1 __main__:count_words 1", result.stdout
    assert "previous version: counts@1" in lines[1]
    assert re.search(r"new +1 shards +100 samples", result.stdout), result.stdout
    assert re.search(r"reused +10 shards +1000 samples", result.stdout), result.stdout
    # 1100 frames, 1 in 6 has no text, sample 7 fails
    assert lines[-1] == f"second counts@2 {1100 - len(range(0, 1100, 6)) - 1}", result.stdout
