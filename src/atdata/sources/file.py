"""Local files: plain paths and ``file://`` URLs."""

import os
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from ..errors import SourceError
from .base import read_capped, read_exactly, register_scheme

__all__ = ["FileSource"]


class FileSource:
    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("file:"):
            parsed = urlparse(url)
            if parsed.netloc not in ("", "localhost"):
                raise SourceError(f"file URL {url!r} names a remote host")
            self.path = unquote(parsed.path)
        else:
            self.path = url
        if "\x00" in self.path:
            raise SourceError(f"shard path {url!r} contains a NUL character, which no file has")

    def local_path(self) -> str | None:
        return self.path

    def open(self) -> BinaryIO:
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise SourceError(f"cannot open shard {self.url!r}: {exc.strerror}") from exc

    def read_range(self, start: int, length: int) -> bytes:
        with self.open() as f:
            f.seek(start)
            return read_exactly(f, self.url, start, length)

    def read_sidecar(self, suffix: str) -> bytes | None:
        try:
            with open(self.path + suffix, "rb") as f:
                return read_capped(f, self.path + suffix)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceError(f"cannot read {self.path + suffix!r}: {exc.strerror}") from exc

    def size(self) -> int:
        return os.path.getsize(self.path)


register_scheme("file", FileSource)
