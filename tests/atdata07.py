"""The public atdata 0.7 package, installed in its own venv (``python -m benchmarks.venv07``),
for tests that check that 0.7 reads what we write and publish."""

from __future__ import annotations

import subprocess
from pathlib import Path

VENV07_PYTHON = Path(__file__).resolve().parent.parent / "benchmarks" / ".venv07" / "bin" / "python"


def run_under_07(
    script: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with atdata 0.7's interpreter; the caller checks the result."""
    return subprocess.run(
        [str(VENV07_PYTHON), "-c", script, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
