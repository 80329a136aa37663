"""The README's "Hugging Face Hub" examples run as written, in fresh processes, against the
loopback Hub server: the first publishes, the second loads in a new process with no class."""

from __future__ import annotations

import re
from pathlib import Path

from hub_fixtures import hub
from hub_server import HubServer
from readme_blocks import python_blocks, run_block

__all__ = ["hub"]


def test_the_readme_hub_examples_run(hub: HubServer, tmp_path: Path) -> None:
    publish, load = python_blocks("## Hugging Face Hub", stop_at_subsection=True)
    out = run_block(publish, tmp_path, tmp_path / "home")
    assert re.search(r"^[0-9a-f]{40} \d+ files in one commit$", out, re.MULTILINE), out
    assert "unchanged, nothing uploaded: True" in out
    assert len(hub.repos["my-org/readings"].commits) == 2
    other = tmp_path / "elsewhere"
    other.mkdir()
    out = run_block(load, other, other / "home")  # another home: nothing of the index is there
    assert out.strip() == "Reading s0 float32 (8,)"
