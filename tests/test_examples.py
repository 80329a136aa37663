"""Every script under ``examples/`` runs to the end and prints what it promises.

Each runs as a subprocess of the test interpreter, with ``ATDATA_HOME`` in a temporary
directory (so nothing touches ``~/.atdata``). A new example needs a line in ``EXPECTED``.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from fresh_env import fresh_env

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: A line (or part of one) each example must print.
EXPECTED = {
    "write_and_read.py": "wrote 1000 samples in 4 shards",
    "adopt_webdataset.py": "loaded @local/pets without a class: 12 Pet samples",
    "lenses.py": "boiling point in Celsius: 100.0",
    "index_and_load.py": "loaded sensors/run@1 without a class: Measurement from atdata.rebuilt",
    "demo.py": "checksums: all shards match",
    "test_with_atdata_fixtures.py": "2 passed",
    "train_torch.py": "resumed at step 10: epoch 0, 640 of 2000 samples done",
    "train_ddp.py": "2 ranks trained 2 epochs in lockstep",
    "query.py": "label 3 with score > 0.5: 52 samples, all label 3: True",
}


def test_every_example_has_an_expected_line() -> None:
    found = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert found, f"no examples under {EXAMPLES}"
    assert sorted(EXPECTED) == found


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str, tmp_path: Path) -> None:
    env = fresh_env(tmp_path / "home")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=tmp_path,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    assert EXPECTED[name] in result.stdout, result.stdout
    assert "Traceback" not in result.stderr
