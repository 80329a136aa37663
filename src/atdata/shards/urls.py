"""Expanding shard specifications into lists of URLs: brace patterns, globs, lists."""

import glob
import os
import re
from collections.abc import Sequence

from ..errors import SourceError
from ..sources import glob_expander, scheme_of
from .offsets import OFFSETS_SUFFIX

__all__ = ["expand_braces", "expand_urls", "without_sidecars"]

_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(\d+)\.\.(\d+)$")
_MAX_EXPANSION = 1_000_000
_GLOB_CHARS = re.compile(r"[*?\[]")
_QUERY_SCHEMES = frozenset({"http", "https", "at"})  # '?' starts a query there, not a glob


def expand_braces(pattern: str) -> list[str]:
    """``a-{000..002}.tar`` -> three names (zero padding kept); ``{x,y}`` -> alternatives.

    >>> expand_braces("s-{00..02}.tar")
    ['s-00.tar', 's-01.tar', 's-02.tar']
    """
    m = _BRACE.search(pattern)
    if m is None:
        return [pattern]
    head, tail = pattern[: m.start()], pattern[m.end() :]
    body = m.group(1)
    rng = _RANGE.match(body)
    if rng:
        lo, hi = int(rng.group(1)), int(rng.group(2))
        if hi < lo:
            raise SourceError(f"brace range {{{body}}} runs backwards in {pattern!r}")
        if hi - lo >= _MAX_EXPANSION:
            raise SourceError(f"brace range {{{body}}} expands to too many names")
        width = len(rng.group(1))
        options = [f"{i:0{width}d}" for i in range(lo, hi + 1)]
    else:
        options = body.split(",")
    out: list[str] = []
    for option in options:
        out.extend(expand_braces(head + option + tail))
        if len(out) > _MAX_EXPANSION:
            raise SourceError(f"{pattern!r} expands to too many names")
    return out


def expand_urls(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """The shard URLs named by a path, URL, brace pattern, glob, or a list of those."""
    items = [source] if isinstance(source, str | os.PathLike) else list(source)
    out: list[str] = []
    for item in items:
        text = os.fspath(item)
        for name in expand_braces(text):
            out.extend(_expand_glob(name))
    if not out:
        raise SourceError(f"no shards match {source!r}")
    return out


#: Suffixes of the sidecars written beside a shard: offset index, manifest (atdata.manifest).
SIDECAR_SUFFIXES = (OFFSETS_SUFFIX, ".manifest")


def without_sidecars(urls: list[str]) -> list[str]:
    """``urls`` less the sidecars (``x.tar.idx``, ``x.tar.manifest``) of shards also in the
    list, which a glob like ``name-*`` matches beside them."""
    present = set(urls)
    return [
        u
        for u in urls
        if not any(u.endswith(sfx) and u[: -len(sfx)] in present for sfx in SIDECAR_SUFFIXES)
    ]


def _expand_glob(name: str) -> list[str]:
    scheme = scheme_of(name)
    if scheme == "file":
        if os.path.isdir(name):
            found = sorted(glob.glob(os.path.join(glob.escape(name), "*.tar")))
            if not found:
                raise SourceError(f"directory {name!r} holds no .tar shards")
            return found
        if _GLOB_CHARS.search(name):
            found = without_sidecars(sorted(glob.glob(name)))
            if not found:
                raise SourceError(f"no shards match the glob {name!r}")
            return found
        return [name]
    if _GLOB_CHARS.search(name.split("?", 1)[0] if scheme in _QUERY_SCHEMES else name):
        expander = glob_expander(scheme)
        if expander is None:
            raise SourceError(f"globs are not supported for {scheme}:// URLs ({name!r})")
        return without_sidecars(expander(name))
    return [name]
