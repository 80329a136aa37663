"""The schema, label and lens methods of :class:`~atdata.index.Index`."""

from collections.abc import Callable, Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError
from ..schema import Schema
from . import labels as label_ops
from . import lenses as lens_ops
from ._facade_base import IndexBase, SchemaSpec, schema_of
from .entries import LabelEntry, LensEntry, SchemaEntry
from .refs import parse_ref
from .repository import Repository
from .schemas import add_schema_tx, classify_change, schema_versions_tx

if TYPE_CHECKING:
    from .entries import DatasetEntry
    from .remote import RemoteLens

__all__ = ["CatalogMethods"]


class CatalogMethods(IndexBase):
    """Add, get, list and remove schemas, labels and lenses (part of ``Index``)."""

    if TYPE_CHECKING:  # provided by DatasetMethods in the assembled Index

        def entry(self, ref: str) -> DatasetEntry: ...

    # -- schemas -----------------------------------------------------------------------------------
    def add_schema(
        self, sample_type: type | Schema, *, version: str | None = None, repo: str | None = None
    ) -> str:
        """Store the schema of ``sample_type``; returns its reference
        (``atdata://local/schema/Name@1.0.0``). An unchanged schema keeps its version; see
        :mod:`atdata.index.schemas` for the bump rule."""
        schema = schema_of(sample_type)
        if schema is None:
            raise InvalidArgumentError("DictSample and dict have no schema to add")
        target = self.repository(repo)
        with target.provider.transaction() as tx:
            return add_schema_tx(tx, schema, repo=target.name, version=version).ref

    def get_schema(self, ref: str) -> SchemaEntry:
        """The schema record named by ``"Name"``, ``"Name@1.0.0"`` or a full reference."""
        parsed = parse_ref(ref, "schema")

        def find(repo: Repository) -> SchemaEntry | None:
            versions = schema_versions_tx(repo.provider, parsed.name, repo.name)
            for rec in reversed(versions):
                if parsed.version is None or rec.version == parsed.version:
                    return rec
            return None

        return self._first_found(parsed.repo, "schema", ref, find)

    def get_schema_type(self, ref: str) -> type:
        """A working sample type rebuilt from a stored schema (no code generated or imported).

        The same reference always gives the same class object in one Index.
        """
        record = self.get_schema(ref)
        cached = self._types.get(record.ref)
        if cached is None:
            cached = self._types.setdefault(record.ref, record.schema.to_sample_type())
        return cached

    @property
    def schemas(self) -> Iterator[SchemaEntry]:
        """Every version of every schema, by repository then name, read lazily."""
        return chain.from_iterable(
            (SchemaEntry.from_record(rec, repo=r.name) for _, rec in r.provider.iter_scan("schema"))
            for r in self._repos.values()
        )

    def list_schemas(self) -> list[SchemaEntry]:
        return list(self.schemas)

    # -- labels ------------------------------------------------------------------------------------
    def label(
        self, label: str, target: str, *, description: str | None = None, replace: bool = False
    ) -> LabelEntry:
        """Make ``label`` name the dataset version ``target`` (no version: the current latest).

        Moving an existing label to a different version needs ``replace=True``.
        """
        entry = self.entry(target)
        parsed = parse_ref(target, "dataset")
        return label_ops.set_label(
            self._repos[entry.repo],
            label,
            entry.name,
            parsed.dataset_version or entry.version,
            description=description,
            replace=replace,
        )

    def get_label(self, label: str) -> LabelEntry:
        """The label record; ``index.get(record.target)`` is the dataset version it names."""
        parsed = parse_ref(label, "label")
        return self._first_found(
            parsed.repo, "label", label, lambda repo: label_ops.get_label(repo, parsed.name)
        )

    @property
    def labels(self) -> Iterator[LabelEntry]:
        return chain.from_iterable(label_ops.iter_labels(r) for r in self._repos.values())

    def list_labels(self) -> list[LabelEntry]:
        return list(self.labels)

    def remove_label(self, label: str) -> LabelEntry:
        found = self.get_label(label)
        label_ops.remove_label(self._repos[found.repo], found.name)
        return found

    # -- lenses ------------------------------------------------------------------------------------
    def add_lens(
        self,
        lens: Any,
        *,
        name: str | None = None,
        source: SchemaSpec | None = None,
        target: SchemaSpec | None = None,
        putter: Callable[..., Any] | str | None = None,
        description: str | None = None,
        replace: bool = False,
        repo: str | None = None,
    ) -> LensEntry:
        """Record a lens by reference: an :class:`atdata.Lens`, or a getter function (or
        ``"module:qualname"``) with ``source`` and ``target`` types, schemas or schema refs.

        The schemas of source and target types are added in the same transaction.
        """
        getter: Any = lens
        if hasattr(lens, "source") and hasattr(lens, "view") and hasattr(lens, "_get"):
            getter = lens._get
            putter = putter if putter is not None else getattr(lens, "_put", None)
            source = source if source is not None else lens.source
            target = target if target is not None else lens.view
            name = name or getattr(lens, "name", None)
        if source is None or target is None:
            raise InvalidArgumentError("add_lens needs source= and target= (types or schema refs)")
        if name is None:
            name = getattr(getter, "__name__", None) or str(getter).rpartition(":")[2]
        return lens_ops.add_lens(
            self.repository(repo),
            name=name,
            source=source,
            target=target,
            getter=getter,
            putter=putter,
            description=description,
            replace=replace,
        )

    def get_lens(self, name: str) -> LensEntry:
        parsed = parse_ref(name, "lens")

        def find(repo: Repository) -> LensEntry | None:
            record = repo.provider.get("lens", parsed.name)
            return None if record is None else LensEntry.from_record(record, repo=repo.name)

        return self._first_found(parsed.repo, "lens", name, find)

    @property
    def lenses(self) -> Iterator[LensEntry]:
        return chain.from_iterable(lens_ops.iter_lenses(r) for r in self._repos.values())

    def list_lenses(self) -> list[LensEntry]:
        return list(self.lenses)

    def find_lenses(
        self, source: SchemaSpec | None = None, view: SchemaSpec | None = None
    ) -> "list[LensEntry | RemoteLens]":
        """Recorded lenses from ``source`` to ``view``; each is a type (matching any stored
        version with the same fields), ``"Name"`` (any version), ``"Name@1.0.0"`` or None (any).
        With ``Index(atmosphere=...)`` the lenses published in the user's repository follow
        the local ones (their schemas read from their records and compared the same way).
        """
        match_source = self._schema_matcher(source)
        match_view = self._schema_matcher(view)
        found: list[LensEntry | RemoteLens] = [
            rec
            for rec in self.lenses
            if match_source(rec.repo, rec.source_schema) and match_view(rec.repo, rec.target_schema)
        ]
        if self._atmosphere is not None:
            remote = self._atmosphere
            want = [
                None if s is None else s if isinstance(s, str | Schema) else Schema.from_type(s)
                for s in (source, view)
            ]
            for lens in remote.lenses():
                ends = (lens.source_schema, lens.target_schema)
                if all(
                    w is None or remote.schema_matches(uri, w)
                    for w, uri in zip(want, ends, strict=True)
                ):
                    found.append(lens)
        return found

    def remove_lens(self, name: str) -> LensEntry:
        found = self.get_lens(name)
        with self._repos[found.repo].provider.transaction() as tx:
            tx.delete("lens", found.name)
        return found

    def _schema_matcher(self, spec: SchemaSpec | None) -> Callable[[str, str], bool]:
        if spec is None:
            return lambda _repo, _ref: True
        if isinstance(spec, str):
            want = parse_ref(spec, "schema")

            def by_ref(repo: str, ref: str) -> bool:
                got = parse_ref(ref, "schema")
                return (
                    got.name == want.name
                    and (want.version is None or got.version == want.version)
                    and (want.repo is None or want.repo == repo)
                )

            return by_ref
        schema = spec if isinstance(spec, Schema) else Schema.from_type(spec)
        matching: set[str] = set()
        for repo in self._repos.values():
            for rec in schema_versions_tx(repo.provider, schema.name, repo.name):
                if classify_change(rec.schema, schema) == "none":
                    matching.add(rec.ref)
        return lambda _repo, ref: ref in matching
