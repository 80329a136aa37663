"""A data store on the local filesystem:
``<root>/<name>/<version>/<write_id>/<basename>-000000.tar``.

Shards are written atomically and exclusively (temporary sibling, fsync, hard link into place,
never replacing an existing file) by :class:`~atdata.shards.sink.LocalFileSink`; shard URLs are
absolute paths. Nothing outside ``root`` is ever written or deleted, and inside it only what one
entry or one write owns (see :mod:`atdata.stores.base`).
"""

import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from .._fs import fsync_dir
from ..errors import InvalidArgumentError, StoreError
from ..manifest.format import MANIFEST_SUFFIX
from ..shards.offsets import OFFSETS_SUFFIX
from ..shards.sink import LocalFileSink, ShardSink
from .base import (
    DataStore,
    check_entry_key,
    check_version,
    check_write_id,
    shard_basename,
    validate_dataset_name,
    warn_not_owned,
)

__all__ = ["LocalDiskStore"]


class LocalDiskStore(DataStore):
    """Shards under one local directory; ``LocalDiskStore()`` is the index's data directory.

    >>> import tempfile
    >>> store = LocalDiskStore(tempfile.mkdtemp())
    >>> store.shard_pattern("team/mnist", 2, "0123456789abcdef").endswith(
    ...     "/team/mnist/2/0123456789abcdef/mnist-%06d.tar")
    True
    """

    kind = "disk"

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        #: True when no root was given: the store is ``$ATDATA_HOME/data`` (``~/.atdata/data``),
        #: and an ``Index(home=...)`` given this store uses ``<home>/data`` instead.
        self.default_root = root is None
        if root is None:
            root = os.path.join(os.environ.get("ATDATA_HOME") or "~/.atdata", "data")
        self.root = Path(os.path.realpath(os.path.expanduser(os.fspath(root))))

    def __repr__(self) -> str:
        return f"LocalDiskStore({str(self.root)!r})"

    def shard_pattern(self, name: str, version: int, write_id: str) -> str:
        directory = self._version_dir(name, version) / check_write_id(write_id)
        return str(directory).replace("%", "%%") + f"/{shard_basename(name)}-%06d.tar"

    def open_sink(self, location: str) -> ShardSink:
        path = self._path_inside(location)
        for attempt in range(3):
            try:
                return _ExclusiveSink(path)
            except FileNotFoundError:
                if attempt == 2:  # a concurrent removal pruned the directory we just made
                    raise StoreError(f"cannot create {location!r} in {self!r}") from None
            except OSError as exc:
                raise StoreError(f"cannot write shard {location!r} in {self!r}: {exc}") from exc
        raise AssertionError("unreachable")

    def owns(self, url: str) -> bool:
        return self._resolve(url) is not None

    def delete_shards(self, name: str, version: int, urls: Sequence[str]) -> None:
        directories: set[Path] = set()
        for url in urls:
            path = self._resolve(url)
            try:
                if path is None:
                    raise InvalidArgumentError(f"it lies outside {self!r}")
                check_entry_key(path.relative_to(self.root).as_posix(), name, version)
            except ValueError as exc:
                warn_not_owned(self, url, exc)
                continue
            for target in (
                path,
                path.with_name(path.name + OFFSETS_SUFFIX),
                path.with_name(path.name + MANIFEST_SUFFIX),
            ):
                try:
                    target.unlink(missing_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot delete {str(target)!r} from {self!r}: {exc}") from exc
            directories.add(path.parent)
        for directory in sorted(directories, reverse=True):
            self._prune(directory)

    def delete_write(self, name: str, version: int, write_id: str | None) -> None:
        version_dir = self._version_dir(name, version)
        if write_id is None:  # the layout without write ids: only the files right in version_dir
            self._delete_files_in(version_dir)
            self._prune(version_dir)
            return
        directory = version_dir / check_write_id(write_id)
        if directory.is_dir():
            try:
                shutil.rmtree(directory)
            except OSError as exc:
                raise StoreError(f"cannot delete {str(directory)!r} from {self!r}: {exc}") from exc
        self._prune(version_dir)

    # -- internals ----------------------------------------------------------------------------
    def link_shard(self, url: str, location: str, suffixes: Sequence[str]) -> bool:
        """Make the shard at ``url`` (and its sidecars ``url + suffix``) appear at ``location``
        as hard links: both inside this store, ``location`` new (StoreError if it exists).

        For carrying a shard over into a new version without copying its bytes (shards are
        never modified in place; deleting one entry's name leaves the other). False when
        it cannot link (another file system, no hard links): the caller copies instead.
        """
        src, dst = self._path_inside(url), self._path_inside(location)
        made: list[Path] = []
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("", *suffixes):
                side = Path(str(src) + suffix)
                if suffix and not side.exists():
                    continue
                target = Path(str(dst) + suffix)
                os.link(side, target)
                made.append(target)
            fsync_dir(dst.parent)
        except FileExistsError:
            self._unlink_all(made)
            raise StoreError(f"{location!r} already exists and was not overwritten") from None
        except OSError:
            self._unlink_all(made)
            return False
        return True

    @staticmethod
    def _unlink_all(paths: Sequence[Path]) -> None:
        for path in paths:
            with contextlib.suppress(OSError):
                path.unlink()

    def _version_dir(self, name: str, version: int) -> Path:
        validate_dataset_name(name)
        return self.root.joinpath(*name.split("/"), str(check_version(version)))

    def _delete_files_in(self, directory: Path) -> None:
        try:
            children = list(directory.iterdir())
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"cannot list {str(directory)!r} in {self!r}: {exc}") from exc
        for child in children:
            if child.is_symlink() or not child.is_file():
                continue  # write-id directories of other writes, or nothing we made
            try:
                child.unlink(missing_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot delete {str(child)!r} from {self!r}: {exc}") from exc

    def _resolve(self, url: str) -> Path | None:
        if url.startswith("file:"):
            parsed = urlparse(url)
            if parsed.netloc not in ("", "localhost"):
                return None
            url = unquote(parsed.path)
        elif "://" in url:
            return None
        # the directory is resolved, the file name is not: a shard replaced by a symlink is
        # judged (and deleted) as the link it is, never as the file it points at
        head, tail = os.path.split(url)
        if tail in ("", ".", ".."):
            return None
        path = Path(os.path.realpath(head or ".")) / tail
        if self.root not in path.parents:
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


class _ExclusiveSink(LocalFileSink):
    """A LocalFileSink that never replaces an existing file; StoreError if one is there."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, exclusive=True)

    def commit(self, *, sync_dir: bool = True) -> None:
        try:
            super().commit(sync_dir=sync_dir)
        except FileExistsError:
            raise StoreError(
                f"{self.location!r} already exists and was not overwritten: another writer "
                "created it; write again (a new write gets a new location)"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot write shard {self.location!r}: {exc}") from exc
