"""A repository: a provider (where records live) plus a data store (where shard bytes live)."""

import os
from dataclasses import dataclass
from pathlib import Path

from .._home import atdata_home
from ..stores.base import DataStore
from ..stores.disk import LocalDiskStore
from .providers.base import Provider
from .providers.sqlite import SQLiteProvider
from .refs import validate_repo_name

__all__ = ["Repository", "atdata_home", "default_repository"]


@dataclass(frozen=True)
class Repository:
    """A named pair of a provider and a store; ``store`` None means it only registers shards
    that live elsewhere (``insert(..., copy=False)``)."""

    name: str
    provider: Provider
    store: DataStore | None = None

    def __post_init__(self) -> None:
        validate_repo_name(self.name)

    def close(self) -> None:
        self.provider.close()


def default_repository(home: str | os.PathLike[str] | None = None) -> Repository:
    """The local repository: SQLite at ``<home>/index.db``, shards under ``<home>/data``."""
    root = Path(home).expanduser() if home is not None else atdata_home()
    return Repository("local", SQLiteProvider(root / "index.db"), LocalDiskStore(root / "data"))
