"""The :class:`Index` facade: datasets, schemas, labels and lenses across repositories.

The facade holds the logic (versions, CIDs, schema bumps, routing names to repositories); each
repository's provider only stores records and each store only holds bytes. Short names are
looked up in the repositories in order (the first one is the default, where writes go);
``atdata://<repo>/<kind>/<name>`` references go straight to their repository.
"""

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import InvalidArgumentError
from ..stores.base import DataStore
from ._facade_atmosphere import AtmosphereMethods
from ._facade_catalog import CatalogMethods
from ._facade_datasets import DatasetMethods
from ._facade_derive import DeriveMethods
from .providers.base import Provider
from .providers.sqlite import SQLiteProvider
from .providers.url import INDEX_URL_ENV, open_provider, provider_from_url
from .repository import Repository, atdata_home

if TYPE_CHECKING:
    from ..atmosphere import AtmosphereClient, AtmosphereSession
    from .remote import DatasetDiscovery

__all__ = ["Index"]


class Index(DatasetMethods, DeriveMethods, CatalogMethods, AtmosphereMethods):
    """Datasets, schemas, labels and lenses, kept in one or more repositories.

    ``Index()`` is SQLite at ``$ATDATA_HOME/index.db`` with shards under ``$ATDATA_HOME/data``
    (``ATDATA_HOME`` defaults to ``~/.atdata``), unless ``ATDATA_INDEX_URL`` names another
    provider (``sqlite:///path``, ``redis://...``, ``postgresql://...``).
    ``Index(provider="redis", url=...)`` / ``Index(provider="postgres", dsn=...)`` pick one by
    name; ``Index(provider, data_store)`` uses your own pair as the repository ``local`` (a missing
    half gets its default); ``Index(repositories=[...])`` holds several, the first the default.

    ``Index(..., atmosphere=session)`` (a logged-in
    :class:`~atdata.atmosphere.AtmosphereSession` or an
    :class:`~atdata.atmosphere.AtmosphereClient`) adds the user's ATProto repository to the
    view: ``get``, ``list_datasets``, ``load`` and ``find_lenses`` answer from it too, and
    ``"@handle/name[@version]"`` / ``at://`` names reach any account's published datasets
    (see :mod:`atdata.index.remote`); ``discovery=`` plugs in a network-wide search
    (:meth:`search`). ``publish(name, to=session)`` promotes a local version.
    """

    def __init__(
        self,
        provider: Provider | str | None = None,
        data_store: DataStore | None = None,
        *,
        url: str | None = None,
        dsn: str | None = None,
        repositories: Sequence[Repository] | None = None,
        home: str | os.PathLike[str] | None = None,
        atmosphere: "AtmosphereSession | AtmosphereClient | None" = None,
        discovery: "DatasetDiscovery | None" = None,
    ) -> None:
        if isinstance(provider, str) or url is not None or dsn is not None:
            provider = open_provider(
                provider if isinstance(provider, str) else None, url=url, dsn=dsn
            )
        elif provider is None and repositories is None and os.environ.get(INDEX_URL_ENV):
            provider = provider_from_url(os.environ[INDEX_URL_ENV])
        if repositories is not None:
            if provider is not None or data_store is not None:
                raise InvalidArgumentError(
                    "pass either repositories=[...] or provider/store, not both"
                )
            repos = list(repositories)
            if not repos:
                raise InvalidArgumentError("an Index needs at least one repository")
        else:
            root = os.fspath(home) if home is not None else str(atdata_home())
            if provider is None:
                provider = SQLiteProvider(os.path.join(os.path.expanduser(root), "index.db"))
            from ..stores.disk import LocalDiskStore

            if data_store is None or (
                isinstance(data_store, LocalDiskStore) and data_store.default_root and home
            ):  # LocalDiskStore() means the index's own data directory
                data_store = LocalDiskStore(os.path.join(os.path.expanduser(root), "data"))
            repos = [Repository("local", provider, data_store)]
        names = [r.name for r in repos]
        if len(set(names)) != len(names):
            raise InvalidArgumentError(f"repository names must be unique, got {names}")
        self._repos = {r.name: r for r in repos}
        self._default = repos[0]
        self._types = {}
        if atmosphere is not None:
            from .remote import AtmosphereView

            self._atmosphere = AtmosphereView(atmosphere, discovery=discovery)
        elif discovery is not None:
            raise InvalidArgumentError("discovery= needs atmosphere= (a logged-in session)")

    def __repr__(self) -> str:
        where = f", atmosphere=@{self._atmosphere.session.handle}" if self._atmosphere else ""
        return f"Index(repositories={list(self._repos)}{where})"

    # -- lifetime (the repository lookups are in _facade_base.IndexBase) ------------------------
    def close(self) -> None:
        for repo in self._repos.values():
            repo.close()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
