"""What every part of the :class:`~atdata.index.Index` facade shares: the repositories and the
lookup of a name across them in order (the mixins in ``_facade_*.py`` build on it)."""

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ..errors import InvalidArgumentError, NotFoundError
from ..sample import DictSample
from ..schema import Schema
from .repository import Repository

if TYPE_CHECKING:
    from .remote import AtmosphereView

__all__ = ["IndexBase", "SchemaSpec", "schema_of"]

SchemaSpec = type | Schema | str

_T = TypeVar("_T")


class IndexBase:
    """The repositories of an Index and the search through them (set up by ``Index.__init__``)."""

    _repos: dict[str, Repository]
    _default: Repository
    _types: dict[str, type]
    _atmosphere: "AtmosphereView | None" = None

    @property
    def atmosphere(self) -> "AtmosphereView | None":
        """The user's ATProto repository as part of this index (``Index(atmosphere=...)``)."""
        return self._atmosphere

    def _view(self, ref: object) -> "AtmosphereView":
        if self._atmosphere is None:
            raise InvalidArgumentError(
                f"{ref!r:.200} names a record in the atmosphere: build the index with "
                "Index(atmosphere=session), or load it with atdata.load_dataset"
            )
        return self._atmosphere

    @property
    def repositories(self) -> list[Repository]:
        return list(self._repos.values())

    def repository(self, name: str | None = None) -> Repository:
        """The repository called ``name`` (None: the default one)."""
        if name is None:
            return self._default
        try:
            return self._repos[name]
        except KeyError:
            raise NotFoundError(
                f"no repository {name!r} in this index (have {', '.join(self._repos)})"
            ) from None

    def _repos_for(self, name: str | None) -> list[Repository]:
        return [self.repository(name)] if name is not None else list(self._repos.values())

    def _first_found(
        self, repo: str | None, what: str, ref: str, find: Callable[[Repository], _T | None]
    ) -> _T:
        """What ``find`` gives in the first repository searched for ``repo`` (every repository,
        in order, when None) where it gives something; NotFoundError naming ``what`` and ``ref``
        when none does."""
        for r in self._repos_for(repo):
            found = find(r)
            if found is not None:
                return found
        raise NotFoundError(f"no {what} {ref!r} in {self._where(repo)}")

    def _where(self, repo: str | None) -> str:
        return f"repository {repo!r}" if repo else f"repositories {', '.join(self._repos)}"


def schema_of(sample_type: type | Schema | None) -> Schema | None:
    """The schema recorded for ``sample_type`` (None for dict samples, which have none)."""
    if sample_type is None or sample_type is DictSample or sample_type is dict:
        return None
    if isinstance(sample_type, Schema):
        return sample_type
    return Schema.from_type(sample_type)
