"""The README's "Services on this machine" shell block and its "One view of local and remote"
example run as written: the first in bash against the services `atdata local up` starts (then
stopped), the second in a fresh process against the local PDS harness, logging in by handle."""

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from atdata.localdev.services import find_pg_bindir, find_rclone
from atmosphere_helpers import new_account_session
from fresh_env import fresh_env
from readme_blocks import python_blocks, run_block, section
from services import PDS_TEST_PASSWORD

pytestmark = pytest.mark.services


def _env(home: Path) -> dict[str, str]:
    return fresh_env(home, drop_prefixes=("ATDATA_", "AWS_"))


def test_the_local_services_block_runs(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None or find_pg_bindir() is None or not find_rclone():
        pytest.skip("redis-server, PostgreSQL or rclone not installed")
    (block,) = re.findall(
        r"```bash\n(.*?)```",
        section("### Services on this machine (the non-embedded setups)"),
        re.DOTALL,
    )
    assert 'eval "$(uv run atdata local up)"' in block
    # `uv run` is this test's Python (the environment under test)
    script = block.replace("uv run atdata", f"{sys.executable} -m atdata.cli")
    script = script.replace("uv run python", sys.executable)
    home = Path(tempfile.mkdtemp(prefix="atdata-readme-"))
    home.chmod(0o711)  # PostgreSQL runs as `postgres` when the tests run as root
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env=_env(home),
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert re.search(r"^counts@1 atdata 45$", done.stdout, re.MULTILINE), done.stdout
        assert done.stdout.count("ok: ") == 3 and "stopped: redis, postgres, s3" in done.stdout
    finally:
        subprocess.run(
            [sys.executable, "-m", "atdata.cli", "local", "down"],
            env=_env(home),
            capture_output=True,
            check=False,
            timeout=120,
        )
        shutil.rmtree(home, ignore_errors=True)


def test_the_one_view_example_runs(pds: dict[str, Any], tmp_path: Path) -> None:
    (code,) = python_blocks("## One view of local and remote")
    session = new_account_session(pds, prefix="r")
    env = {
        "ATDATA_HANDLE": session.handle,
        "ATDATA_APP_PASSWORD": PDS_TEST_PASSWORD,
        "ATDATA_PLC_URL": pds["plc"],
        "ATDATA_HANDLE_RESOLVER": pds["pds"],
    }
    out = run_block(code, tmp_path, tmp_path / "home", env=env)
    assert out.splitlines() == [
        "local counts@1",
        f"atmosphere @{session.handle}/counts@1",
        "True 45",
    ]
