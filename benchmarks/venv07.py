"""The comparator's environment: atdata 0.7.0b1 in ``benchmarks/.venv07`` (Python 3.12).

atdata 0.7 needs Python >= 3.12 while this project runs on 3.11, so it lives in its own virtual
environment, created on first use and driven through subprocesses. Run this module directly to
create it ahead of time: ``python -m benchmarks.venv07``.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv07"
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = ("atdata==0.7.0b1", "webdataset")
_PROBE = "import importlib.metadata as m, webdataset; print(m.version('atdata'))"


def installed() -> bool:
    """True when the venv exists and holds atdata 0.7.0b1."""
    if not PYTHON.exists():
        return False
    probe = subprocess.run([str(PYTHON), "-c", _PROBE], capture_output=True, text=True, check=False)
    return probe.returncode == 0 and probe.stdout.strip() == "0.7.0b1"


def _python312() -> str | None:
    env = dict(os.environ, PYENV_VERSION="3.12.1")
    if shutil.which("pyenv"):
        found = subprocess.run(
            ["pyenv", "which", "python3.12"], capture_output=True, text=True, env=env, check=False
        )
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    return shutil.which("python3.12")


def ensure(quiet: bool = False) -> Path:
    """Create the venv if needed; returns its interpreter."""
    if installed():
        return PYTHON
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    say(f"creating {VENV} with atdata 0.7.0b1 (one time)...")
    if VENV.exists():
        shutil.rmtree(VENV)
    py312 = _python312()
    uv = shutil.which("uv")
    if py312 is not None:
        subprocess.run([py312, "-m", "venv", str(VENV)], check=True)
    elif uv is not None:
        subprocess.run([uv, "venv", "--seed", "--python", "3.12", str(VENV)], check=True)
    else:
        raise RuntimeError("no Python 3.12 found (tried pyenv 3.12.1, python3.12 and uv)")
    if uv is not None:
        cmd = [uv, "pip", "install", "--quiet", "--python", str(PYTHON), *REQUIREMENTS]
    else:
        cmd = [str(PYTHON), "-m", "pip", "install", "--quiet", *REQUIREMENTS]
    subprocess.run(cmd, check=True)
    if not installed():
        raise RuntimeError(f"{VENV} was created but does not import atdata 0.7.0b1")
    return PYTHON


if __name__ == "__main__":
    print(ensure())
