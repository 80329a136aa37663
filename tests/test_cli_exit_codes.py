"""The INSTALLED ``atdata`` script (``.venv/bin/atdata``) exits with real statuses: 0 on success,
1 for atdata errors (one red line, no traceback unless ``--debug``), differences and mismatches,
2 for usage errors; ``--json`` writes nothing but JSON to stdout."""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from fresh_env import fresh_env

SCRIPT = Path(sys.executable).with_name("atdata")
Run = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def atdata_cmd(tmp_path: Path) -> Run:
    assert SCRIPT.is_file(), f"the atdata script is not installed at {SCRIPT}; run uv sync"
    env = fresh_env(tmp_path / "home", NO_COLOR="1")

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args],
            cwd=tmp_path,
            env=env,
            check=False,
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def test_the_installed_script_has_real_exit_codes(atdata_cmd: Run, tmp_path: Path) -> None:
    demo = atdata_cmd("demo")
    assert demo.returncode == 0, demo.stderr
    assert "demo@1" in demo.stdout

    ls = atdata_cmd("ls", "--json")
    assert ls.returncode == 0
    assert json.loads(ls.stdout)[0]["name"] == "demo"

    assert atdata_cmd("verify", "demo").returncode == 0
    assert atdata_cmd("inspect", "@local/demo@1").returncode == 0
    assert atdata_cmd("schema", "diff", "DemoImage", "@local/demo").returncode == 0

    missing = atdata_cmd("inspect", "@local/nope")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no dataset 'nope' in repositories local"
    assert missing.stdout == ""

    debug = atdata_cmd("--debug", "inspect", "@local/nope")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "NotFoundError" in debug.stderr

    assert atdata_cmd("inspect", "@local/Not_Valid").returncode == 2
    assert atdata_cmd("no-such-command").returncode == 2
    assert atdata_cmd("preview", "@local/demo", "--limit", "0").returncode == 2

    (shard,) = (tmp_path / "home" / "data" / "demo" / "1").glob("*/demo-000000.tar")  # <write id>/
    assert atdata_cmd("schema", "diff", "DemoImage", str(shard)).returncode == 0
    with open(shard, "r+b") as f:
        f.seek(2000)
        byte = f.read(1)
        f.seek(2000)
        f.write(bytes([byte[0] ^ 1]))
    corrupt = atdata_cmd("verify", "demo@1")
    assert corrupt.returncode == 1
    assert str(shard) in corrupt.stdout

    declined = atdata_cmd("rm", "demo", input="n\n")
    assert declined.returncode == 1
    assert atdata_cmd("rm", "demo", "--yes").returncode == 0
    assert json.loads(atdata_cmd("ls", "--json").stdout) == []
