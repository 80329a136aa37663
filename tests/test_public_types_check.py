"""The typing promises of the public API (tests/typecheck/check_public_types.py) hold under mypy."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_public_api_types_check_under_mypy() -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (it is in the dev group: uv sync)")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "tests/typecheck"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
