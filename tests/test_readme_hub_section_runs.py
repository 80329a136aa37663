"""The README's "Hugging Face Hub" examples run as written, in fresh processes, against the
loopback Hub server: the first publishes, the second loads in a new process with no class."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from hub_fixtures import hub
from hub_server import HubServer

__all__ = ["hub"]

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Hugging Face Hub", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def _run(code: str, cwd: Path, home: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATDATA_")}
    env["ATDATA_HOME"] = str(home)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_readme_hub_examples_run(hub: HubServer, tmp_path: Path) -> None:
    publish, load = _blocks()
    out = _run(publish, tmp_path, tmp_path / "home")
    assert re.search(r"^[0-9a-f]{40} \d+ files in one commit$", out, re.MULTILINE), out
    assert "unchanged, nothing uploaded: True" in out
    assert len(hub.repos["my-org/readings"].commits) == 2
    other = tmp_path / "elsewhere"
    other.mkdir()
    out = _run(load, other, other / "home")  # another home: nothing of the index is there
    assert out.strip() == "Reading s0 float32 (8,)"
