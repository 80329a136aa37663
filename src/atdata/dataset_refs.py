"""``load_dataset()``: one entry point from a path, URL, index name or atmosphere reference.

* ``@local/name[@version]``: a dataset in the index (default ``Index()``); its schema gives the
  sample type when none is passed, and shard checksums are verified on download.
* ``at://did/science.alt.dataset.entry/rkey`` and ``@handle/name[@version]``: the atmosphere.
* ``hf://datasets/org/name[@revision][/path or glob]``: a Hugging Face Hub dataset repository,
  pinned to one commit, split by its card's ``configs``/``data_files`` or by file names
  (:mod:`atdata.hub.reading`).
* a local file, directory, glob or brace pattern, or an http(s)/s3 URL: shards found there,
  grouped into splits by name (``train``/``training``, ``test``/``testing``,
  ``validation``/``valid``/``val``/``dev``, delimited by ``-``, ``_``, ``.`` or a path separator)
  in the part of each path below the directory (or fixed prefix) the argument starts in.

With ``split`` the result is a :class:`~atdata.Dataset`; without it a :class:`DatasetDict`.
"""

import glob
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar, overload
from urllib.parse import unquote, urlsplit

from .dataset import Dataset
from .errors import NotFoundError, SourceError
from .shards.urls import expand_braces, expand_urls, without_sidecars
from .sources import registered_schemes, scheme_of

__all__ = ["DatasetDict", "detect_split", "is_atmosphere_reference", "load_dataset"]

T = TypeVar("T")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "test": "test",
    "testing": "test",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
}
_TOKEN = re.compile(r"[^-_./\\]+")
_DEFAULT_SPLIT = "train"
_PATTERN_CHARS = re.compile(r"[*?\[{]")
_QUERY_SCHEMES = frozenset({"http", "https"})


class DatasetDict(dict[str, Dataset[T]], Generic[T]):
    """Datasets by split name (``train``, ``test``, ``validation``, ...), all of one sample type."""

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}: {len(v.shards)} shard(s)" for k, v in self.items())
        return f"DatasetDict({{{inner}}})"


def detect_split(path: str) -> str | None:
    """The split a shard path names, or None.

    >>> detect_split("data/mnist-train-000001.tar"), detect_split("val/x.tar")
    ('train', 'validation')
    """
    tokens = _TOKEN.findall(path.lower())
    for token in reversed(tokens):  # the file name wins over its directories
        if token in _SPLIT_ALIASES:
            return _SPLIT_ALIASES[token]
    return None


@overload
def load_dataset(
    path: str | os.PathLike[str],
    sample_type: type[T],
    *,
    split: str,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    index: Any = None,
    streaming: bool = True,
) -> Dataset[T]: ...


@overload
def load_dataset(
    path: str | os.PathLike[str],
    sample_type: None = None,
    *,
    split: str,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    index: Any = None,
    streaming: bool = True,
) -> Dataset[Any]: ...


@overload
def load_dataset(
    path: str | os.PathLike[str],
    sample_type: type[T],
    *,
    split: None = None,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    index: Any = None,
    streaming: bool = True,
) -> DatasetDict[T]: ...


@overload
def load_dataset(
    path: str | os.PathLike[str],
    sample_type: None = None,
    *,
    split: None = None,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    index: Any = None,
    streaming: bool = True,
) -> DatasetDict[Any]: ...


def load_dataset(
    path: str | os.PathLike[str],
    sample_type: type[T] | None = None,
    *,
    split: str | None = None,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    index: Any = None,
    streaming: bool = True,
) -> Dataset[Any] | DatasetDict[Any]:
    """Load a dataset by path, URL or name; see the module docstring for the forms accepted.

    ``streaming`` is accepted for familiarity with Hugging Face ``datasets``: atdata datasets
    always stream shards (nothing is downloaded up front), so ``streaming=False`` gives the same
    dataset; pass ``cache=True`` to ``Dataset`` or set ``$ATDATA_CACHE_DIR`` to keep local copies.
    """
    del streaming  # every atdata dataset streams; see the docstring
    text = os.fspath(path)
    if text.startswith("@local/"):
        splits = _from_index(text[len("@local/") :], sample_type, index)
    elif is_atmosphere_reference(text):
        splits = _from_atmosphere(text, sample_type, index)
    elif scheme_of(text) == "hf" and data_files is None:
        from .hub.reading import load_hub

        splits = DatasetDict(load_hub(text, sample_type, detect_split))
    else:
        _check_scheme(text)
        splits = _from_files(_local_path(text), sample_type, data_files)
    if split is None:
        return splits
    if split not in splits:
        wanted = _SPLIT_ALIASES.get(split.lower(), split)
        if wanted not in splits:
            raise NotFoundError(f"no split {split!r} in {text!r}; available: {sorted(splits)}")
        split = wanted
    return splits[split]


def _check_scheme(text: str) -> None:
    """SourceError now, not at iteration, when no source reads ``text``'s URL scheme."""
    scheme = scheme_of(text)
    if scheme != "file" and scheme not in registered_schemes():
        raise SourceError(
            f"no source reads {scheme}:// URLs ({text!r:.200}); known schemes: "
            + ", ".join(registered_schemes())
        )


def _local_path(text: str) -> str:
    """``text``, or the local path a ``file://`` URL names (``file:///abs``,
    ``file://localhost/abs``, percent-escapes decoded); SourceError for another host."""
    if text[:5].lower() != "file:":
        return text
    parsed = urlsplit(text)
    if parsed.netloc.lower() not in ("", "localhost"):
        raise SourceError(
            f"{text!r} names a file on host {parsed.netloc!r}: only local files "
            "(file:///path or file://localhost/path) can be read"
        )
    if not parsed.path:
        raise SourceError(f"{text!r} names no path")
    return unquote(parsed.path)


def _from_index(ref: str, sample_type: type[T] | None, index: Any) -> DatasetDict[Any]:
    if index is None:
        from .index import Index

        index = Index()
    entry = index.get(ref)
    return DatasetDict({_DEFAULT_SPLIT: index.load(entry, sample_type)})


def is_atmosphere_reference(text: str) -> bool:
    """True when ``text`` names the atmosphere: ``at://...``, ``@handle`` or
    ``@handle/name[@version]``; ``@local`` and ``@local/...`` name the local index.

    The one test of this, shared by :func:`load_dataset` and the CLI. A handle that is not
    valid (``@foo/bar``: no dot) is still an atmosphere reference, so that resolving it says
    what is wrong with it instead of looking for a file called ``@foo/bar``.

    >>> [is_atmosphere_reference(t) for t in ("@alice.test/mnist", "@foo/bar", "@local/mnist")]
    [True, True, False]
    """
    if text.startswith("at://"):
        return True
    return text.startswith("@") and text != "@local" and not text.startswith("@local/")


def _from_atmosphere(ref: str, sample_type: type[T] | None, index: Any) -> DatasetDict[Any]:
    if index is not None and getattr(index, "atmosphere", None) is not None:
        # Index(atmosphere=...): resolve with the index's session and resolver
        return DatasetDict({_DEFAULT_SPLIT: index.load(ref, sample_type)})
    from .atmosphere.open_dataset import load_reference

    return DatasetDict({_DEFAULT_SPLIT: load_reference(ref, sample_type)})


def _from_files(
    text: str,
    sample_type: type[T] | None,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None,
) -> DatasetDict[Any]:
    if data_files is not None:
        return _from_data_files(text, sample_type, data_files)
    tried: list[str] = []
    try:
        urls = without_sidecars(_find_shards(text, tried))
    except SourceError as exc:
        raise SourceError(
            f"found no shards for {text!r} ({exc}); tried: " + "; ".join(tried)
        ) from exc
    if not urls:
        raise SourceError(f"found no shards for {text!r}; tried: " + "; ".join(tried))
    grouped: dict[str, list[str]] = {}
    for url in urls:
        grouped.setdefault(detect_split(_relative(url, text)) or _DEFAULT_SPLIT, []).append(url)
    return DatasetDict({name: Dataset(found, sample_type) for name, found in grouped.items()})


def _relative(url: str, root: str) -> str:
    """The part of ``url`` that tells its split: below the directory ``root``, or below the
    fixed directory (or URL prefix) ``root`` starts with before its first wildcard or brace.

    The directories above, and a URL's host, name no split: ``/home/me/test/x-*.tar`` and
    ``https://test.example.com/x.tar`` are not the test split.
    """
    if scheme_of(url) == "file" and os.path.isdir(root):
        return os.path.relpath(url, root)
    base = _static_base(root)
    rel = url[len(base) :] if url.startswith(base) else url
    if scheme_of(url) in _QUERY_SCHEMES:
        rel = rel.split("?", 1)[0]
    return rel


def _static_base(pattern: str) -> str:
    """``pattern`` up to the last separator before its first wildcard or brace."""
    head = pattern.split("?", 1)[0] if scheme_of(pattern) in _QUERY_SCHEMES else pattern
    m = _PATTERN_CHARS.search(head)
    if m is not None:
        head = head[: m.start()]
    seps = {"/", os.sep, os.altsep or "/"}
    cut = max(head.rfind(sep) for sep in seps)
    return head[: cut + 1]


def _find_shards(text: str, tried: list[str]) -> list[str]:
    if scheme_of(text) != "file":
        tried.append(f"URL {text}")
        return expand_urls(text)
    if os.path.isdir(text):
        tried.append(f"directory {text} (and its split subdirectories) for *.tar")
        return sorted(glob.glob(os.path.join(glob.escape(text), "**", "*.tar"), recursive=True))
    names = expand_braces(text)
    tried.append(f"path/glob/brace pattern {text}")
    found: list[str] = []
    for name in names:
        if any(c in name for c in "*?["):
            found.extend(sorted(glob.glob(name)))
        elif os.path.isfile(name):
            found.append(name)
    if not found and not text.endswith(".tar"):
        tried.append(f"{text}.tar")
        if os.path.isfile(text + ".tar"):
            found.append(text + ".tar")
    return found


def _from_data_files(
    base: str,
    sample_type: type[T] | None,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]],
) -> DatasetDict[Any]:
    mapping: Mapping[str, str | Sequence[str]]
    mapping = data_files if isinstance(data_files, Mapping) else {_DEFAULT_SPLIT: data_files}
    out: DatasetDict[Any] = DatasetDict()
    for name, spec in mapping.items():
        patterns = [spec] if isinstance(spec, str) else list(spec)
        local = [_local_path(p) for p in patterns]
        joined = [
            p if scheme_of(p) != "file" or os.path.isabs(p) else os.path.join(base, p)
            for p in local
        ]
        out[name] = Dataset(without_sidecars(expand_urls(joined)), sample_type)
    return out
