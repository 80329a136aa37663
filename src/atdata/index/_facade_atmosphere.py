"""The atmosphere methods of :class:`~atdata.index.Index`: publishing a dataset version or a
recorded lens to an ATProto repository (the atmosphere package is imported only when called)."""

from typing import TYPE_CHECKING, Any, overload

from ._facade_base import IndexBase

if TYPE_CHECKING:
    from ..atmosphere import (
        AtmosphereClient,
        AtmosphereSession,
        LensRecord,
        PublishedDataset,
        StoredRecord,
    )
    from ..hub import HubPublished
    from .entries import DatasetEntry, LensEntry, SchemaEntry
    from .remote import RemoteDataset

__all__ = ["AtmosphereMethods"]


class AtmosphereMethods(IndexBase):
    """``publish`` and ``publish_lens`` (part of ``Index``)."""

    if TYPE_CHECKING:  # provided by DatasetMethods and CatalogMethods in the assembled Index

        def entry(self, ref: str) -> DatasetEntry: ...

        def get_schema(self, ref: str) -> SchemaEntry: ...

        def get_lens(self, name: str) -> LensEntry: ...

    # -- the atmosphere ----------------------------------------------------------------------------
    def search(self, q: str | None = None, *, limit: int = 25) -> "list[RemoteDataset]":
        """Datasets anyone published that the discovery service of
        ``Index(atmosphere=..., discovery=...)`` finds for ``q``, each read again from its
        publisher's PDS; load one with :meth:`load`."""
        return self._view("search").search(q, limit=limit)

    @overload
    def publish(self, name: str, *, to: str, **options: Any) -> "HubPublished": ...

    @overload
    def publish(
        self, name: str, *, to: "AtmosphereSession | AtmosphereClient", **options: Any
    ) -> "PublishedDataset": ...

    def publish(
        self,
        name: str,
        *,
        to: "AtmosphereSession | AtmosphereClient | str",
        **options: Any,
    ) -> "PublishedDataset | HubPublished":
        """Publish the dataset version ``name`` (``"mnist"``, ``"mnist@3"``) to the atmosphere:
        its schema, an entry record and a label ``name``/``version`` in the ATProto repository
        of ``to`` (a logged-in :class:`~atdata.atmosphere.AtmosphereSession`).

        Anyone can then load it with ``load_dataset("@<handle>/<name>[@<version>]")``. Shards
        at http(s) or S3 URLs are referenced by URL; others are uploaded as PDS blobs. Running
        it again writes nothing new. ``options`` are those of
        :func:`atdata.atmosphere.publish_dataset`: ``storage="auto"|"urls"|"blobs"``,
        ``split=True`` (cut shards over the PDS blob limit at sample boundaries),
        ``replace_label=True``, ``label=False``, ``s3_endpoint``, ``s3_region``.
        Needs ``pip install 'atdata[atmosphere]'``.

        ``to="hf://datasets/org/name"`` publishes to that Hugging Face Hub dataset repository
        instead: shards, sidecars and a dataset card in one commit (nothing when unchanged);
        ``options`` are those of :func:`atdata.hub.publish_to_hub` (``private``, ``token``,
        ``split``, ``progress``). Needs ``pip install 'atdata[hf]'``.
        """
        if isinstance(to, str):
            from ..hub.publish import publish_to_hub

            return publish_to_hub(self, name, to=to, **options)
        from ..atmosphere.publish import publish_dataset

        return publish_dataset(self, name, to=to, **options)

    def publish_lens(
        self,
        name: str,
        *,
        to: "AtmosphereSession | AtmosphereClient",
        repository: str,
        commit: str,
        **options: Any,
    ) -> "StoredRecord[LensRecord]":
        """Publish the recorded lens ``name`` to the atmosphere as references to its code in
        ``repository`` at ``commit`` (never the code itself), with both of its schemas.

        ``options`` are those of :func:`atdata.atmosphere.publish_lens` (``getter_path``,
        ``putter_path``, ``branch``). An identical lens record already published is reused.
        """
        from ..atmosphere.publish import publish_lens

        return publish_lens(self, name, to=to, repository=repository, commit=commit, **options)
