"""Lazy imports of optional dependencies, failing with the command that installs them."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["check_installed", "install_command", "require"]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise ImportError naming the extra that provides it.

    >>> require("json", "core").dumps([])
    '[]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise _missing(module, extra) from exc


def check_installed(module: str, extra: str) -> None:
    """Raise the ImportError of :func:`require` unless ``module`` is installed.

    Finds the module without importing it, so that an object can be made (a source served from
    the shard cache) without paying for the import of a client library it may never need.

    >>> check_installed("json", "core")
    """
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise _missing(module, extra)


def install_command(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'atdata[s3]'``."""
    return f"pip install 'atdata[{extra}]'"


def _missing(module: str, extra: str) -> ImportError:
    return ImportError(
        f"{module!r} is needed for this feature but is not installed; "
        f"install it with: {install_command(extra)}"
    )
