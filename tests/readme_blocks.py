"""The README's code, for the tests that check it runs as written: the ``python`` blocks of one
section, and running one in a fresh interpreter with its own ``ATDATA_HOME``."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from fresh_env import fresh_env

README = Path(__file__).resolve().parent.parent / "README.md"

_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def section(title: str, *, stop_at_subsection: bool = False) -> str:
    """The README text under the heading ``title`` (written with its hashes, ``"## Set up"``),
    up to the next heading of the same or a higher level; with ``stop_at_subsection`` up to the
    next heading of any lower level too."""
    text = README.read_text(encoding="utf-8")
    head = f"\n{title}\n"
    assert head in text, f"the README has no heading {title!r}"
    body = text.split(head, 1)[1]
    level = len(title) - len(title.lstrip("#"))
    ends = [f"\n{'#' * n} " for n in range(1, level + 1)]
    if stop_at_subsection:
        ends.append(f"\n{'#' * (level + 1)} ")
    for end in ends:
        body = body.split(end, 1)[0]
    return body


def python_blocks(title: str, *, stop_at_subsection: bool = False) -> list[str]:
    """The ``python`` code blocks of the README section ``title`` (see :func:`section`), in
    order; at least one."""
    blocks = _BLOCK.findall(section(title, stop_at_subsection=stop_at_subsection))
    assert blocks, f"the README section {title!r} has no python code block"
    return blocks


def run_block(
    code: str,
    cwd: Path,
    home: Path,
    *,
    env: Mapping[str, str] | None = None,
    drop_prefixes: tuple[str, ...] = ("ATDATA_",),
) -> str:
    """Run ``code`` in a new interpreter in ``cwd``, with ``ATDATA_HOME`` set to ``home`` and
    no other variable of the environment starting with one of ``drop_prefixes``, plus ``env``;
    assert it exits 0 and return what it printed."""
    clean = fresh_env(home, drop_prefixes=drop_prefixes, **(env or {}))
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=clean,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
