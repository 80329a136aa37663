"""Names, versions and references of index records.

A reference is ``atdata://<repository>/<kind>/<name>[@<version>]`` (kinds: dataset, schema,
label, lens), or the short form ``<name>[@<version>]`` resolved in the index's repositories.
Dataset versions are integers from 1 (``mnist@2``; ``mnist`` and ``mnist@latest`` mean the
newest); schema versions are semver (``Image@1.2.0``).
"""

import re
from dataclasses import dataclass
from typing import Literal

from ..errors import InvalidArgumentError
from ..stores.base import validate_dataset_name

__all__ = [
    "LATEST",
    "Ref",
    "RefKind",
    "bump_semver",
    "dataset_key",
    "KEY_SEP",
    "format_ref",
    "is_remote_ref",
    "local_ref",
    "name_prefix",
    "schema_key",
    "parse_ref",
    "parse_semver",
    "validate_lens_name",
    "validate_repo_name",
]

RefKind = Literal["dataset", "schema", "label", "lens"]
LATEST = "latest"
_SCHEME = "atdata://"
_KINDS = ("dataset", "schema", "label", "lens")
# used with fullmatch: a pattern ending in '$' would also accept a trailing newline
_REPO = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_LENS = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,199}")
_SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
_INT = re.compile(r"[1-9][0-9]{0,9}")
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


@dataclass(frozen=True)
class Ref:
    """A parsed reference; ``version`` None means the latest."""

    kind: RefKind
    name: str
    version: str | None = None
    repo: str | None = None

    @property
    def dataset_version(self) -> int | None:
        """The dataset version as an int (None for latest)."""
        return None if self.version is None else int(self.version)


def parse_ref(text: str, kind: RefKind) -> Ref:
    """Parse a full or short reference of ``kind``; ValueError says what is wrong.

    >>> parse_ref("atdata://local/dataset/team/mnist@2", "dataset")
    Ref(kind='dataset', name='team/mnist', version='2', repo='local')
    >>> parse_ref("Image@latest", "schema")
    Ref(kind='schema', name='Image', version=None, repo=None)
    """
    if not isinstance(text, str) or not text:
        raise InvalidArgumentError(f"a {kind} reference must be a non-empty string, got {text!r}")
    repo: str | None = None
    body = text
    if text.startswith(_SCHEME):
        parts = text[len(_SCHEME) :].split("/", 2)
        if len(parts) != 3 or parts[1] not in _KINDS:
            raise InvalidArgumentError(
                f"{text!r} is not a reference of the form atdata://<repo>/<kind>/<name>"
            )
        repo, found, body = validate_repo_name(parts[0]), parts[1], parts[2]
        if found != kind:
            raise InvalidArgumentError(f"{text!r} refers to a {found}, not a {kind}")
    name, at, version = body.partition("@")
    if at and not version:
        raise InvalidArgumentError(f"{text!r} has an empty version after '@'")
    if version == LATEST:
        version = ""
    if kind in ("dataset", "label"):
        validate_dataset_name(name)
        if version and (kind == "label" or not _INT.fullmatch(version)):
            raise InvalidArgumentError(
                f"{text!r}: a {kind} version must be an integer from 1 or 'latest'"
            )
    elif kind == "schema":
        _validate_schema_name(name, text)
        if version:
            parse_semver(version)
    else:
        validate_lens_name(name)
        if version:
            raise InvalidArgumentError(f"{text!r}: lenses are not versioned")
    return Ref(kind, name, version or None, repo)


def format_ref(repo: str, kind: RefKind, name: str, version: str | int | None = None) -> str:
    """``atdata://<repo>/<kind>/<name>[@<version>]``."""
    suffix = "" if version is None else f"@{version}"
    return f"{_SCHEME}{repo}/{kind}/{name}{suffix}"


#: Separates a name from its version in provider keys. It sorts below every character a name
#: may hold, so keys sort by name, then version ("a#..." < "a-b#...").
KEY_SEP = "#"


def dataset_key(name: str, version: int) -> str:
    """The provider key of a dataset version (``name#0000000007``); sorts by name, version."""
    return f"{name}{KEY_SEP}{version:010d}"


def name_prefix(name: str) -> str:
    """The key prefix shared by every version of ``name`` (and no other name)."""
    return f"{name}{KEY_SEP}"


def schema_key(name: str, version: str) -> str:
    """The provider key of a schema version (``Image#1.2.0``)."""
    return f"{name}{KEY_SEP}{version}"


def parse_semver(version: str) -> tuple[int, int, int]:
    """``"1.2.3"`` -> ``(1, 2, 3)``; ValueError for anything else."""
    m = _SEMVER.fullmatch(version) if isinstance(version, str) else None
    if m is None:
        raise InvalidArgumentError(f"schema version {version!r} is not MAJOR.MINOR.PATCH")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def bump_semver(version: str, part: Literal["major", "minor", "patch"]) -> str:
    """The next version after ``version`` bumping ``part``.

    >>> bump_semver("1.4.2", "minor")
    '1.5.0'
    """
    major, minor, patch = parse_semver(version)
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def validate_repo_name(name: str) -> str:
    if not isinstance(name, str) or not _REPO.fullmatch(name):
        raise InvalidArgumentError(
            f"repository name {name!r} must be lowercase letters, digits, '_' or '-'"
        )
    return name


def validate_lens_name(name: str) -> str:
    if not isinstance(name, str) or not _LENS.fullmatch(name):
        raise InvalidArgumentError(
            f"lens name {name!r} must start with a letter or '_' and hold letters, digits, '_', "
            "'.' and '-'"
        )
    return name


def _validate_schema_name(name: str, text: str) -> None:
    if not _SCHEMA_NAME.fullmatch(name):
        raise InvalidArgumentError(f"{text!r}: a schema name is a plain identifier such as 'Image'")


def is_remote_ref(ref: object) -> bool:
    """True for ``at://...`` and ``@handle/...``: names of records in ATProto repositories
    (``@local/...`` names the local index).

    >>> [is_remote_ref(r) for r in ("at://did:plc:x/c/r", "@a.test/m", "@local/m", "mnist")]
    [True, True, False, False]
    """
    if not isinstance(ref, str):
        return False
    return ref.startswith("at://") or (ref.startswith("@") and not ref.startswith("@local/"))


def local_ref(ref: str) -> str:
    """``ref`` without the ``@local/`` that says it names the local index.

    >>> local_ref("@local/mnist@2"), local_ref("mnist")
    ('mnist@2', 'mnist')
    """
    return ref[len("@local/") :] if ref.startswith("@local/") else ref
