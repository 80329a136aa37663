"""A data store on the local filesystem: ``<root>/<name>/<version>/<basename>-000000.tar``.

Shards are written atomically (temporary sibling, fsync, rename) by
:class:`~atdata.shards.sink.LocalFileSink`; shard URLs are absolute paths. Nothing outside
``root`` is ever written or deleted.
"""

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import StoreError
from ..shards.sink import LocalFileSink, ShardSink
from .base import DataStore, shard_basename, validate_dataset_name

__all__ = ["LocalDiskStore"]


class LocalDiskStore(DataStore):
    """Shards under one local directory.

    >>> import tempfile
    >>> store = LocalDiskStore(tempfile.mkdtemp())
    >>> store.shard_pattern("team/mnist", 2).endswith("/team/mnist/2/mnist-%06d.tar")
    True
    """

    kind = "disk"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.realpath(os.path.expanduser(os.fspath(root))))

    def __repr__(self) -> str:
        return f"LocalDiskStore({str(self.root)!r})"

    def shard_pattern(self, name: str, version: int) -> str:
        directory = self._version_dir(name, version)
        return str(directory).replace("%", "%%") + f"/{shard_basename(name)}-%06d.tar"

    def open_sink(self, location: str) -> ShardSink:
        path = self._path_inside(location)
        for attempt in range(3):
            try:
                return LocalFileSink(path)
            except FileNotFoundError:
                if attempt == 2:  # a concurrent removal pruned the directory we just made
                    raise StoreError(f"cannot create {location!r} in {self!r}") from None
            except OSError as exc:
                raise StoreError(f"cannot write shard {location!r} in {self!r}: {exc}") from exc
        raise AssertionError("unreachable")

    def owns(self, url: str) -> bool:
        return self._resolve(url) is not None

    def delete_version(self, name: str, version: int) -> None:
        directory = self._version_dir(name, version)
        if directory.is_dir():
            try:
                shutil.rmtree(directory)
            except OSError as exc:
                raise StoreError(f"cannot delete {str(directory)!r} from {self!r}: {exc}") from exc
        self._prune(directory.parent)

    # -- internals ----------------------------------------------------------------------------
    def _version_dir(self, name: str, version: int) -> Path:
        validate_dataset_name(name)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"dataset versions are integers from 1, got {version!r}")
        return self.root.joinpath(*name.split("/"), str(version))

    def _resolve(self, url: str) -> Path | None:
        if url.startswith("file:"):
            parsed = urlparse(url)
            if parsed.netloc not in ("", "localhost"):
                return None
            url = unquote(parsed.path)
        elif "://" in url:
            return None
        path = Path(os.path.realpath(url))
        if path == self.root or self.root not in path.parents:
            return None
        return path

    def _path_inside(self, url: str) -> Path:
        path = self._resolve(url)
        if path is None:
            raise StoreError(f"{url!r} lies outside {self!r}; the store only writes inside it")
        return path

    def _prune(self, directory: Path) -> None:
        """Remove ``directory`` and then its parents while they are empty, stopping at root."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (or already gone by another path): stop
            directory = directory.parent
