"""docs/guide.md runs as written: its python blocks in order, in one process, in a fresh
directory with its own ``ATDATA_HOME``; then each ``atdata`` line of its shell blocks, which must
exit 0."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fresh_env import fresh_env

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _blocks(language: str) -> list[str]:
    return [m.group(2) for m in _BLOCK.finditer(GUIDE.read_text("utf-8")) if m.group(1) == language]


def test_the_guide_has_code_to_run() -> None:
    assert len(_blocks("python")) >= 8
    assert _blocks("shell")


def test_the_guide_runs_as_written(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the guide's torch section needs atdata[torch]")
    env = fresh_env(tmp_path / "home")
    code = "\n\n".join(_blocks("python")) + "\nprint('GUIDE DONE')\n"
    (tmp_path / "guide.py").write_text(code, encoding="utf-8")
    ran = subprocess.run(
        [sys.executable, "guide.py"],
        cwd=tmp_path,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "GUIDE DONE" in ran.stdout

    for block in _blocks("shell"):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if not words:
                continue
            assert words[0] == "atdata", f"the guide's shell lines run atdata only: {line!r}"
            cli = subprocess.run(
                [sys.executable, "-m", "atdata.cli", *words[1:]],
                cwd=tmp_path,
                env=env,
                check=False,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert cli.returncode == 0, f"{line}:\n{cli.stdout}{cli.stderr}"
