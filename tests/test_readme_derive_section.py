"""The README's "Derived datasets and lineage" example runs as written, in a fresh
``ATDATA_HOME``, and shows what the section says: lineage, one failure, an incremental plan."""

import re
from pathlib import Path

from readme_blocks import python_blocks, run_block


def test_the_readme_derive_example_runs_as_written(tmp_path: Path) -> None:
    code = python_blocks("## Derived datasets and lineage")[0]
    code += "\nprint('second', counts.ref, counts.count)\n"
    out = run_block(code, tmp_path, tmp_path / "home")
    lines = out.splitlines()
    assert lines[0] == "counts@1 frames@1 __main__:count_words 1", out
    assert "previous version: counts@1" in lines[1]
    assert re.search(r"new +1 shards +100 samples", out), out
    assert re.search(r"reused +10 shards +1000 samples", out), out
    # 1100 frames, 1 in 6 has no text, sample 7 fails
    assert lines[-1] == f"second counts@2 {1100 - len(range(0, 1100, 6)) - 1}", out
