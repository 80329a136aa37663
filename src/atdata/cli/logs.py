"""What the library's log records show on the CLI's stderr: ``-v``, ``-vv`` and ``--quiet``.

The library logs under ``atdata.<module>`` and installs no handler (a NullHandler on
``atdata`` only). The CLI adds one handler on the ``atdata`` logger for the command it runs
and removes it when the command ends (so a Python process that runs several commands, such as
a test, is left as it was):

=================  ==================================================================
(default)          library records at ERROR; the CLI's own notes and warnings as always
``-v``             INFO and up: retries, fallbacks, slow downloads, failed checks
``-vv``            DEBUG and up: cache hits, misses and evictions, passed checks
``-q``/``--quiet`` errors only: library records at ERROR, no notes, no warnings
=================  ==================================================================

Every line is redacted (:func:`atdata._redact.redact`) before it is written, on top of the
library's own care with URLs.
"""

import logging
import sys
import warnings
from typing import Any

from .._redact import redact
from ..errors import AtdataWarning

__all__ = ["LOGGER", "configure", "is_quiet", "level_for"]

#: The logger the library's modules log under.
LOGGER = "atdata"


def level_for(verbose: int, quiet: bool) -> int:
    """The logging level for ``-v`` given ``verbose`` times and ``--quiet``."""
    if quiet:
        return logging.ERROR
    if verbose >= 2:
        return logging.DEBUG
    return logging.INFO if verbose == 1 else logging.ERROR


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a record arrives (typer's test runner swaps
    it), redacted. ``quiet`` is the command's ``--quiet``."""

    def __init__(self, level: int, *, quiet: bool) -> None:
        super().__init__(level)
        self.quiet = quiet

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = redact(self.format(record))
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except Exception:  # logging must never break the command
            self.handleError(record)


def configure(ctx: Any, verbose: int, quiet: bool) -> None:
    """Install the handler for this command (``ctx``: the root click context); it is removed,
    and the logger's level restored, when the context closes. ``--quiet`` also silences
    atdata warnings and :func:`atdata.cli._shared.note` for the command."""
    level = level_for(verbose, quiet)
    logger = logging.getLogger(LOGGER)
    handler = _StderrHandler(level, quiet=quiet)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    before = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(before)

    ctx.call_on_close(restore)
    if quiet:
        ctx.with_resource(warnings.catch_warnings())
        warnings.simplefilter("ignore", AtdataWarning)


def is_quiet() -> bool:
    """Whether the running command was given ``--quiet`` (its handler says so)."""
    handlers = logging.getLogger(LOGGER).handlers
    return any(isinstance(h, _StderrHandler) and h.quiet for h in handlers)
