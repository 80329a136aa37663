"""The scheme registry: how a shard URL is opened.

Every shard location goes through :func:`open_source`, which picks a :class:`ShardSource` by URL
scheme. Plain paths and ``file://`` URLs are local files; ``http(s)``, ``s3`` and ``at`` register
themselves here. ``pipe:`` and any unknown scheme are refused, whoever supplied the URL: nothing
read from a record or a config is ever run as a command.
"""

import os
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol

from .._optional import install_command
from ..errors import InvalidArgumentError, ShardError, SourceError

__all__ = [
    "MAX_SIDECAR_BYTES",
    "ShardSource",
    "glob_expander",
    "open_source",
    "register_glob",
    "register_scheme",
    "registered_schemes",
    "read_capped",
    "read_exactly",
    "read_range_via",
    "register_sidecar_builder",
    "scheme_of",
    "sidecar_builder",
]

#: No sidecar is read past this many bytes (an offset index of ~400k samples; see
#: ``atdata.shards.offsets.sidecar_limit``): an endless or huge sidecar is refused, not buffered.
MAX_SIDECAR_BYTES = 64 << 20

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


class ShardSource(Protocol):
    """Read access to the bytes of one shard (and its offset-index sidecar, if any)."""

    url: str

    def local_path(self) -> str | None:
        """A local filesystem path when the bytes are on disk (enables mmap), else None."""
        ...

    def open(self) -> BinaryIO:
        """A binary stream of the whole shard, read sequentially."""
        ...

    def read_range(self, start: int, length: int) -> bytes:
        """Exactly ``length`` bytes from ``start``."""
        ...

    def read_sidecar(self, suffix: str) -> bytes | None:
        """The bytes of ``url + suffix`` (e.g. the offset index), or None if it does not exist."""
        ...


SourceFactory = Callable[[str], ShardSource]
GlobExpander = Callable[[str], list[str]]
_REGISTRY: dict[str, SourceFactory] = {}
_GLOBBERS: dict[str, GlobExpander] = {}


SidecarBuilder = Callable[["ShardSource"], bytes]
_SIDECAR_BUILDERS: dict[str, SidecarBuilder] = {}


def register_sidecar_builder(suffix: str, builder: SidecarBuilder) -> None:
    """Let sources that carry no sidecars (``at://`` blobs) build the ``suffix`` sidecar from
    their verified bytes with ``builder``. The shard layer registers its offset-index scan
    here when it is imported; sources, which sit below it, never import it."""
    _SIDECAR_BUILDERS[suffix] = builder


def sidecar_builder(suffix: str) -> SidecarBuilder | None:
    """The builder registered for ``suffix``, if any."""
    return _SIDECAR_BUILDERS.get(suffix)


def register_glob(scheme: str, expander: GlobExpander) -> None:
    """Let ``scheme://`` URLs with wildcards be expanded by listing (e.g. S3 prefixes)."""
    _GLOBBERS[scheme.lower()] = expander


def glob_expander(scheme: str) -> GlobExpander | None:
    return _GLOBBERS.get(scheme.lower())


def register_scheme(scheme: str, factory: SourceFactory) -> None:
    """Make ``scheme://`` URLs open with ``factory`` (used by the http, s3 and at sources)."""
    _REGISTRY[scheme.lower()] = factory


def registered_schemes() -> list[str]:
    return sorted(_REGISTRY)


def scheme_of(url: str) -> str:
    """The lower-cased URL scheme, or ``file`` for a plain path (Windows drive letters included)."""
    m = _SCHEME.match(url)
    if m is None or len(m.group(1)) == 1:
        return "file"
    return m.group(1).lower()


def open_source(url: str) -> ShardSource:
    """The source for ``url``; SourceError for refused or unknown schemes."""
    scheme = scheme_of(url)
    if scheme == "pipe":
        raise SourceError(f"refusing {url!r}: pipe: URLs run shell commands and are never opened")
    factory = _REGISTRY.get(scheme)
    if factory is None:
        raise SourceError(
            f"no source handles {scheme}:// URLs ({url!r}); known schemes: {', '.join(registered_schemes())}"
            + (f" — install it with: {install_command('s3')}" if scheme == "s3" else "")
        )
    return factory(url)


class _Reads(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def read_exactly(stream: _Reads, url: str, start: int, length: int) -> bytes:
    """The next ``length`` bytes of ``stream`` (positioned at byte ``start`` of shard ``url``);
    SourceError when the shard ends before them."""
    data = stream.read(length)
    if len(data) != length:
        raise SourceError(
            f"shard {url!r} ended at byte {start + len(data)}, wanted {start + length}"
        )
    return data


def read_range_via(
    open_range: Callable[[int, int], AbstractContextManager[_Reads]],
    url: str,
    start: int,
    length: int,
) -> bytes:
    """``read_range`` of a remote source: exactly ``length`` bytes from ``start``, read from the
    stream ``open_range(start, start + length)`` opens (none for ``length`` 0);
    InvalidArgumentError for a negative range, SourceError when the shard ends before them."""
    if start < 0 or length < 0:
        raise InvalidArgumentError(f"bad range start={start} length={length}")
    if length == 0:
        return b""
    with open_range(start, start + length) as stream:
        return read_exactly(stream, url, start, length)


def read_capped(stream: BinaryIO, what: str, limit: int = MAX_SIDECAR_BYTES) -> bytes:
    """All of ``stream`` if it holds at most ``limit`` bytes; ShardError naming ``what`` if more."""
    parts: list[bytes] = []
    held = 0
    try:  # a file: ask for its size (plus one byte, to see it end), not for the whole limit
        step = os.fstat(stream.fileno()).st_size + 1
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        step = limit + 1
    while held <= limit:
        got = stream.read(min(step, limit + 1 - held))
        if not got:
            return b"".join(parts)
        parts.append(got)
        held += len(got)
    raise ShardError(f"{what} is larger than {limit} bytes, more than any sidecar holds; not read")
