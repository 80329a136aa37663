"""Shards in a Hugging Face Hub dataset repository: ``hf://datasets/<org>/<name>[@<revision>]/<path>``.

The URL names a file of a dataset repository at a revision (a branch, tag or commit sha;
percent-encode a ``/`` in it, ``@refs%2Fpr%2F1``); without one, ``main``. Bytes come from the
Hub's ``resolve`` endpoint through the HTTP source (ranged reads, retries, deadlines, the
verified shard cache), with the headers ``huggingface_hub`` builds: its user agent and the
token from ``$HF_TOKEN`` or ``hf auth login``. The Hub is ``$HF_ENDPOINT`` (read when a source is
made, so tests can point it at a loopback server), else ``https://huggingface.co``.

A glob (``hf://datasets/org/name@v1/data/*.tar``) is listed once through ``huggingface_hub``, at
the commit the revision names when listed, and every URL it gives carries that commit sha: the
shards of one expansion never come from two commits. Needs ``pip install 'atdata[hf]'``.
"""

import fnmatch
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from .._optional import require
from ..errors import SourceError
from .base import ShardSource, register_glob, register_scheme
from .http import HttpSource

__all__ = [
    "HubPath",
    "expand_hub_glob",
    "hub_api",
    "hub_endpoint",
    "hub_headers",
    "list_files",
    "open_hub_source",
    "parse_hub_url",
]

DEFAULT_ENDPOINT = "https://huggingface.co"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REPO_TYPES = ("datasets",)


@dataclass(frozen=True)
class HubPath:
    """A parsed ``hf://`` URL: the repository, the revision (None: ``main``) and a path in it."""

    repo_id: str
    revision: str | None = None
    path: str = ""

    @property
    def url(self) -> str:
        rev = f"@{quote(self.revision, safe='')}" if self.revision else ""
        tail = f"/{self.path}" if self.path else ""
        return f"hf://datasets/{self.repo_id}{rev}{tail}"

    def at(self, revision: str, path: str | None = None) -> "HubPath":
        return HubPath(self.repo_id, revision, self.path if path is None else path)

    def resolve_url(self) -> str:
        """Where the Hub serves this file's bytes."""
        rev = quote(self.revision or "main", safe="")
        return f"{hub_endpoint()}/datasets/{self.repo_id}/resolve/{rev}/{quote(self.path)}"


def parse_hub_url(url: str) -> HubPath:
    """``hf://datasets/org/name[@rev][/path]`` parsed; SourceError naming what is wrong.

    >>> parse_hub_url("hf://datasets/org/mnist@v1/data/train-*.tar")
    HubPath(repo_id='org/mnist', revision='v1', path='data/train-*.tar')
    """
    if not url.startswith("hf://"):
        raise SourceError(f"{url!r} is not an hf:// URL")
    parts = url[len("hf://") :].split("/")
    if len(parts) < 3 or parts[0] not in _REPO_TYPES:
        raise SourceError(
            f"{url!r}: expected hf://datasets/<org>/<name>[@<revision>][/<path>] "
            "(only dataset repositories are read)"
        )
    org, name = parts[1], parts[2]
    revision = None
    if "@" in name:
        name, rev = name.split("@", 1)
        revision = unquote(rev)
        if not revision or any(c in revision for c in "\x00\n\r") or ".." in revision:
            raise SourceError(f"{url!r}: bad revision {rev!r}")
    for part in (org, name):
        if not _NAME.match(part):
            raise SourceError(f"{url!r}: {part!r} is not a valid Hub namespace or name")
    path = "/".join(p for p in parts[3:] if p)
    if any(p in ("..", ".") for p in path.split("/")):
        raise SourceError(f"{url!r}: a path in a repository has no '.' or '..' segment")
    return HubPath(f"{org}/{name}", revision, path)


def hub_endpoint() -> str:
    """``$HF_ENDPOINT`` or the public Hub, without a trailing slash."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_headers(token: str | None = None) -> dict[str, str]:
    """The headers ``huggingface_hub`` sends: user agent and, when there is one, the token
    (``token``, else ``$HF_TOKEN``, else the stored login)."""
    utils = require("huggingface_hub.utils", "hf")
    headers: dict[str, str] = utils.build_hf_headers(token=token or None)
    return headers


def hub_api(token: str | None = None) -> Any:
    """A ``huggingface_hub.HfApi`` for :func:`hub_endpoint` (read now, not at import)."""
    hub = require("huggingface_hub", "hf")
    return hub.HfApi(endpoint=hub_endpoint(), token=token or None)


def open_hub_source(url: str) -> ShardSource:
    """The HTTP source of one ``hf://`` file (its ``resolve`` URL, with the Hub's headers)."""
    where = parse_hub_url(url)
    if not where.path or any(c in where.path for c in "*?["):
        raise SourceError(f"{url!r} names no single file of the repository")
    return HttpSource(where.resolve_url(), headers=hub_headers())


def expand_hub_glob(pattern: str) -> list[str]:
    """The files a ``hf://`` glob matches, each URL pinned to the commit listed."""
    where = parse_hub_url(pattern)
    api = hub_api()
    sha = api.dataset_info(where.repo_id, revision=where.revision or "main").sha
    files = list_files(api, where.repo_id, sha)
    return [where.at(sha, p).url for p in files if fnmatch.fnmatchcase(p, where.path)]


def list_files(api: Any, repo_id: str, sha: str) -> dict[str, str | None]:
    """Every file of ``repo_id`` at commit ``sha``, sorted, with its LFS sha256 when it has one."""
    found: dict[str, str | None] = {}
    for item in api.list_repo_tree(repo_id, repo_type="dataset", revision=sha, recursive=True):
        if getattr(item, "size", None) is None or not hasattr(item, "blob_id"):
            continue  # a folder
        lfs = getattr(item, "lfs", None)
        found[item.path] = lfs.sha256 if lfs is not None else None
    return dict(sorted(found.items()))


register_scheme("hf", open_hub_source)
register_glob("hf", expand_hub_glob)
