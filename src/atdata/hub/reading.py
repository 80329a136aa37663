"""Loading a Hub dataset repository: ``hf://datasets/org/name[@revision][/path or glob]``.

The revision is resolved to a commit sha once, and every shard URL handed to the datasets
carries that sha, so an epoch (and every worker) reads one commit whatever lands on the branch
meanwhile. Splits come from the dataset card's ``configs``/``data_files`` when it has them,
else from the file names and folders the way Hub users name them (``train``, ``test``,
``validation``, ... as a path component or a ``-``/``_``/``.``-delimited word; the caller
passes that rule in as ``split_of``). A card written by atdata also gives the schema (the
sample type is rebuilt from it when none is passed) and each shard's sha256; otherwise each
file's LFS sha256 as the Hub lists it is the expected digest. Every shard is checked against its
digest before a sample is read from it (through the shard cache when one is on).
"""

import fnmatch
from collections.abc import Callable
from typing import Any

from .._optional import require
from ..dataset import Dataset
from ..errors import NotFoundError, SourceError
from ..shards.offsets import OFFSETS_SUFFIX
from ..shards.shardset import CheckedOpener, ShardExpectation
from ..sources import ShardCache
from ..sources.base import read_capped
from ..sources.hf import HubPath, hub_api, list_files, open_hub_source, parse_hub_url
from .card import MAX_CARD_BYTES, HubCard, read_card

__all__ = ["load_hub"]

_DEFAULT_SPLIT = "train"
_CARD = "README.md"


def load_hub(
    text: str, sample_type: type | None, split_of: Callable[[str], str | None]
) -> dict[str, Dataset[Any]]:
    """The splits of the Hub dataset ``text`` names, each pinned to one commit."""
    where = parse_hub_url(text)
    api = hub_api()
    errors = require("huggingface_hub.errors", "hf")
    try:
        sha = api.dataset_info(where.repo_id, revision=where.revision or "main").sha
        files = list_files(api, where.repo_id, sha)
    except errors.RepositoryNotFoundError:
        raise NotFoundError(
            f"{text!r}: no dataset repository {where.repo_id!r} on the Hub, or it is private "
            "(set $HF_TOKEN or run `hf auth login`)"
        ) from None
    except errors.RevisionNotFoundError:
        raise NotFoundError(f"{text!r}: no revision {where.revision!r}") from None
    pinned = where.at(sha)
    card = _card(pinned, files)
    if sample_type is None and card.schema is not None:
        sample_type = card.schema.to_sample_type()
    groups = _group(pinned, files, card, split_of)
    if not groups:
        raise SourceError(f"found no .tar shards in {text!r} (at commit {sha})")
    digests = {s.path: s.sha256 for s in card.shards}
    sidecars = {s.path: s.sidecars.get(OFFSETS_SUFFIX) for s in card.shards}
    out: dict[str, Dataset[Any]] = {}
    cache = ShardCache.from_setting(None)
    for name, paths in groups.items():
        urls = [pinned.at(sha, p).url for p in paths]
        sums = {
            u: digest
            for u, p in zip(urls, paths, strict=True)
            if (digest := digests.get(p) or files.get(p)) is not None
        }
        expect = {
            u: ShardExpectation(sha256=sums.get(u), sidecar_sha256=sidecars.get(p))
            for u, p in zip(urls, paths, strict=True)
        }
        out[name] = Dataset(urls, sample_type, source_factory=CheckedOpener(cache, sums, expect))
    return out


def _card(pinned: HubPath, files: dict[str, str | None]) -> HubCard:
    if _CARD not in files:
        return HubCard({})
    url = pinned.at(pinned.revision or "main", _CARD).url
    with open_hub_source(url).open() as stream:
        data = read_capped(stream, url, MAX_CARD_BYTES)
    return read_card(data.decode("utf-8", errors="replace"), url)


def _group(
    pinned: HubPath,
    files: dict[str, str | None],
    card: HubCard,
    split_of: Callable[[str], str | None],
) -> dict[str, list[str]]:
    """Split -> shard paths in the repository, in order."""
    shards = [p for p in files if p.endswith(".tar")]
    if pinned.path:  # an explicit path or glob: its files, split by name
        shards = [p for p in shards if fnmatch.fnmatchcase(p, pinned.path) or p == pinned.path]
    elif card.data_files:
        out: dict[str, list[str]] = {}
        for split, patterns in card.data_files.items():
            hits = [p for p in shards if any(fnmatch.fnmatchcase(p, pat) for pat in patterns)]
            if hits:
                out[split] = hits
        return out
    grouped: dict[str, list[str]] = {}
    for path in shards:
        grouped.setdefault(split_of(path) or _DEFAULT_SPLIT, []).append(path)
    return grouped
