"""The atmosphere side of one :class:`~atdata.index.Index`: the datasets and lenses the user
published to their ATProto repository (and, with a discovery service, anyone's), read with the
same verbs as local ones.

``Index(atmosphere=session)`` (an :class:`~atdata.atmosphere.AtmosphereSession` or
:class:`~atdata.atmosphere.AtmosphereClient`) builds an :class:`AtmosphereView`; the index's
``get``, ``list_datasets``, ``load`` and ``find_lenses`` then answer from it as well. Names say
where each thing comes from: a local version is ``@local/<name>@<version>`` (its ``uri``
``atdata://<repo>/dataset/...``), a published one ``@<handle>/<name>[@<version>]`` (its ``uri``
the record's ``at://``). Records are read from the publisher's PDS and validated against the
lexicons; nothing read is executed (a lens is only a reference to code).

Network-wide search is the job of a discovery service (an indexer following the repositories'
event streams). Anything with ``search_datasets(q, *, limit=...)`` returning items that carry an
``at://`` entry ``uri`` fits (:class:`DatasetDiscovery`, e.g. ``atdata.discovery.DiscoveryClient``);
``Index(atmosphere=..., discovery=...)`` plugs it in and :meth:`AtmosphereView.search` re-reads
every hit from its publisher's PDS, so a discovery service cannot forge a dataset.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol

from ..atmosphere import (
    AtmosphereClient,
    AtmosphereSession,
    CodeReference,
    DatasetRecord,
    Resolver,
    StoredRecord,
    current_resolver,
    resolve_dataset,
)
from ..atmosphere.open_dataset import dataset_of
from ..errors import AtmosphereError, InvalidArgumentError, NotFoundError
from ..schema import Schema

if TYPE_CHECKING:
    from ..dataset import Dataset

__all__ = [
    "AtmosphereView",
    "DatasetDiscovery",
    "DiscoveryHit",
    "RemoteDataset",
    "RemoteLens",
]


class DiscoveryHit(Protocol):
    """One search result of a discovery service: the ``at://`` URI of a dataset entry."""

    @property
    def uri(self) -> str: ...


class DatasetDiscovery(Protocol):
    """A network-wide dataset search (``atdata.discovery.DiscoveryClient`` has this shape)."""

    def search_datasets(self, q: str | None = None, *, limit: int = ...) -> Iterable[Any]: ...


@dataclass(frozen=True)
class RemoteDataset:
    """A dataset entry published in an ATProto repository."""

    uri: str
    cid: str
    did: str
    handle: str | None
    name: str
    version: str | None
    schema_uri: str
    description: str | None
    tags: tuple[str, ...]
    license: str | None
    created_at: str
    #: where it lives: always ``"atmosphere"`` (local entries say their repository's name)
    repo: str = "atmosphere"

    def __fspath__(self) -> str:
        """The ``at://`` URI: ``load_dataset(remote)`` loads it."""
        return self.uri

    @property
    def ref(self) -> str:
        """``@handle/name[@version]`` when the handle is known, else the ``at://`` URI."""
        if self.handle is None:
            return self.uri
        return f"@{self.handle}/{self.name}" + (f"@{self.version}" if self.version else "")


@dataclass(frozen=True)
class RemoteLens:
    """A lens record published in an ATProto repository (references to code, never code)."""

    uri: str
    name: str
    source_schema: str
    target_schema: str
    getter: CodeReference
    putter: CodeReference
    description: str | None
    repo: str = "atmosphere"


def _client(atmosphere: AtmosphereSession | AtmosphereClient) -> AtmosphereClient:
    if isinstance(atmosphere, AtmosphereClient):
        return atmosphere
    if isinstance(atmosphere, AtmosphereSession):
        return AtmosphereClient(atmosphere, resolver=current_resolver() or Resolver.default())
    raise InvalidArgumentError(
        f"atmosphere= takes an AtmosphereSession or AtmosphereClient, got {type(atmosphere)!r}"
    )


class AtmosphereView:
    """The user's ATProto repository (``client.session``'s account) seen as part of an index."""

    def __init__(
        self,
        atmosphere: AtmosphereSession | AtmosphereClient,
        *,
        discovery: DatasetDiscovery | None = None,
    ) -> None:
        self.client = _client(atmosphere)
        if self.client.session is None:
            raise InvalidArgumentError("atmosphere= needs a logged-in session (whose repository)")
        self.session: AtmosphereSession = self.client.session
        self.discovery = discovery

    def __repr__(self) -> str:
        return f"AtmosphereView(@{self.session.handle}, discovery={self.discovery is not None})"

    # -- datasets -----------------------------------------------------------------------------
    def _remote(
        self, entry: StoredRecord[DatasetRecord], version: str | None, handle: str | None
    ) -> RemoteDataset:
        v = entry.value
        return RemoteDataset(
            uri=str(entry.uri),
            cid=entry.cid,
            did=entry.uri.did,
            handle=handle,
            name=v.name,
            version=version,
            schema_uri=v.schema_ref,
            description=v.description,
            tags=tuple(v.tags),
            license=v.license,
            created_at=v.created_at,
        )

    def datasets(self) -> Iterator[RemoteDataset]:
        """Every dataset entry of the user's repository (labelled ones by label version)."""
        did, handle = self.session.did, self.session.handle
        versions: dict[str, str | None] = {}
        for label in self.client.labels(did, on_invalid="skip"):
            versions.setdefault(label.value.dataset_uri, label.value.version)
        for entry in self.client.entries(did, on_invalid="skip"):
            yield self._remote(entry, versions.get(str(entry.uri)), handle)

    def get(self, ref: "str | RemoteDataset") -> RemoteDataset:
        """The published dataset ``ref`` names (``@handle/name[@version]`` or ``at://``)."""
        text = ref.uri if isinstance(ref, RemoteDataset) else ref
        resolved = resolve_dataset(text, client=self.client)
        did = resolved.uri.did
        handle: str | None = None
        if text.startswith("@"):
            handle = text[1:].partition("/")[0].lower()
        elif did == self.session.did:
            handle = self.session.handle
        if resolved.label is not None:
            version = resolved.label.value.version
        else:  # named by its entry URI: the version its newest label gives it, if any
            labels = [
                lab.value
                for lab in self.client.labels(did, on_invalid="skip")
                if lab.value.dataset_uri == str(resolved.uri)
            ]
            newest = max(labels, key=lambda lab: lab.created_at, default=None)
            version = newest.version if newest is not None else None
        entry = StoredRecord(resolved.uri, resolved.entry_cid, resolved.entry)
        return self._remote(entry, version, handle)

    def load(self, ref: "str | RemoteDataset", sample_type: type | None = None) -> "Dataset[Any]":
        """A :class:`~atdata.Dataset` over the published shards, each verified as it is read."""
        text = ref.uri if isinstance(ref, RemoteDataset) else ref
        return dataset_of(resolve_dataset(text, client=self.client), sample_type)

    def search(self, q: str | None = None, *, limit: int = 25) -> list[RemoteDataset]:
        """Datasets anyone published that the discovery service finds for ``q``; each hit is
        read again from its publisher's PDS (a hit that no longer resolves is left out)."""
        if self.discovery is None:
            raise InvalidArgumentError("search needs Index(atmosphere=..., discovery=...)")
        found: list[RemoteDataset] = []
        # no more than `limit` hits are followed, whatever the service sends
        for hit in islice(self.discovery.search_datasets(q, limit=limit), max(limit, 0)):
            uri = getattr(hit, "uri", None)
            if not isinstance(uri, str) or not uri.startswith("at://"):
                continue
            try:
                found.append(self.get(uri))
            except (AtmosphereError, NotFoundError):
                continue
        return found

    # -- lenses --------------------------------------------------------------------------------
    def lenses(self) -> Iterator[RemoteLens]:
        """Every lens record of the user's repository."""
        for lens in self.client.lenses(self.session.did, on_invalid="skip"):
            v = lens.value
            yield RemoteLens(
                uri=str(lens.uri),
                name=v.name,
                source_schema=v.source_schema,
                target_schema=v.target_schema,
                getter=v.getter,
                putter=v.putter,
                description=v.description,
            )

    def schema_matches(self, schema_uri: str, spec: "str | Schema") -> bool:
        """Whether the published schema at ``schema_uri`` is ``spec`` (``"Name"``,
        ``"Name@1.0.0"``, or a Schema compared field by field)."""
        record = self.client.get_schema(schema_uri).value
        if isinstance(spec, str):
            name, _, version = spec.partition("@")
            return record.name == name and (not version or record.version == version)
        try:
            return record.to_schema(where=schema_uri) == spec
        except AtmosphereError:
            return False
