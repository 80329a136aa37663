"""Labels: names for dataset versions (``production`` -> ``mnist@3``), kind ``label``.

A label always names one existing version in its own repository. Pointing an existing label at
a different version needs ``replace=True``; removing a labelled version needs the label moved or
removed first (or ``force=True`` on removal).
"""

from collections.abc import Iterator

from .._clock import utc_now
from ..errors import ConflictError, NotFoundError
from ..stores.base import validate_dataset_name
from .entries import LabelEntry
from .refs import dataset_key
from .repository import Repository

__all__ = ["get_label", "iter_labels", "remove_label", "set_label"]


def set_label(
    repo: Repository,
    label: str,
    name: str,
    version: int | None,
    *,
    description: str | None,
    replace: bool,
) -> LabelEntry:
    """Point ``label`` at ``name@version`` (None: the current latest, pinned now)."""
    validate_dataset_name(label)
    with repo.provider.transaction() as tx:
        if version is None:
            head = tx.get("head", name)
            version = None if head is None else head.get("latest")
            if version is None:
                raise NotFoundError(f"no dataset {name!r} in repository {repo.name!r} to label")
        if tx.get("dataset", dataset_key(name, version)) is None:
            raise NotFoundError(f"no dataset {name}@{version} in repository {repo.name!r} to label")
        old = tx.get("label", label)
        if old is not None:
            current = LabelEntry.from_record(old, repo=repo.name)
            if (current.dataset, current.version) == (name, version):
                return current
            if not replace:
                raise ConflictError(
                    f"label {label!r} already names {current.target}; pass replace=True to move "
                    f"it to {name}@{version}"
                )
        record = LabelEntry(label, name, version, utc_now(), description, repo.name)
        tx.put("label", label, record.to_record())
    return record


def get_label(repo: Repository, label: str) -> LabelEntry | None:
    record = repo.provider.get("label", label)
    return None if record is None else LabelEntry.from_record(record, repo=repo.name)


def iter_labels(repo: Repository) -> Iterator[LabelEntry]:
    for _, record in repo.provider.iter_scan("label"):
        yield LabelEntry.from_record(record, repo=repo.name)


def remove_label(repo: Repository, label: str) -> bool:
    with repo.provider.transaction() as tx:
        return tx.delete("label", label)
