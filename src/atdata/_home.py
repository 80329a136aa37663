"""Where atdata keeps its local state: ``$ATDATA_HOME``, default ``~/.atdata``.

A bottom-layer helper so that every package (the index, the stored atmosphere login) reads the
same place without importing one another.
"""

import os
from pathlib import Path

__all__ = ["atdata_home"]


def atdata_home() -> Path:
    """``$ATDATA_HOME``, or ``~/.atdata`` when it is unset or empty (read at call time)."""
    return Path(os.environ.get("ATDATA_HOME") or "~/.atdata").expanduser()
