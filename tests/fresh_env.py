"""The environment for a child process of a test: this one's, less every ``ATDATA_*`` variable
(and those of other prefixes asked for), with ``ATDATA_HOME`` a directory of the test's own."""

from __future__ import annotations

import os
from pathlib import Path


def fresh_env(
    home: Path | str, *, drop_prefixes: tuple[str, ...] = ("ATDATA_",), **extra: str
) -> dict[str, str]:
    """``os.environ`` without the variables starting with one of ``drop_prefixes``, with
    ``ATDATA_HOME=home`` and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}
    env["ATDATA_HOME"] = str(home)
    env.update(extra)
    return env
