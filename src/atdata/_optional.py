"""Lazy imports of optional dependencies, failing with the command that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise ImportError naming the extra that provides it.

    >>> require("json", "core").dumps([])
    '[]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module!r} is needed for this feature but is not installed; "
            f"install it with: pip install 'atdata[{extra}]'"
        ) from exc
