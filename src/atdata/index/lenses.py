"""Lenses recorded by reference, kind ``lens``: the schemas they connect and their code's name.

The code is named, never stored: ``"module:qualname"`` of installed functions. Recording a
lens adds the schemas of its source and view types (in the same transaction). A lens name
that is already recorded with different schemas or code needs ``replace=True``.
"""

from collections.abc import Callable, Iterator
from typing import Any

from .._clock import utc_now
from ..errors import ConflictError, InvalidArgumentError, NotFoundError
from ..schema import Schema
from .entries import LensEntry
from .providers.base import Transaction
from .refs import parse_ref, validate_lens_name
from .repository import Repository
from .schemas import add_schema_tx, schema_versions_tx

__all__ = ["code_ref", "iter_lenses", "add_lens", "schema_ref_tx"]

SchemaSpec = type | Schema | str


def code_ref(fn: Callable[..., Any] | str) -> str:
    """``"module:qualname"`` of an importable function (or the string itself, checked)."""
    if isinstance(fn, str):
        module, sep, qualname = fn.partition(":")
        if not (sep and module and qualname):
            raise InvalidArgumentError(f"code reference {fn!r} must be 'module:qualname'")
        return fn
    mod: str | None = getattr(fn, "__module__", None)
    qual: str | None = getattr(fn, "__qualname__", None)
    if not mod or not qual or "<" in qual or mod == "__main__":
        raise InvalidArgumentError(
            f"{fn!r} cannot be recorded by reference: define it at the top level of an "
            "importable module (not a lambda, a nested function or __main__)"
        )
    return f"{mod}:{qual}"


def schema_ref_tx(tx: Transaction, spec: SchemaSpec, repo: str) -> str:
    """The reference of a schema given as a type, a Schema (added if new) or a ref string."""
    if isinstance(spec, str):
        ref = parse_ref(spec, "schema")
        if ref.repo is not None and ref.repo != repo:
            raise InvalidArgumentError(f"{spec!r} is in repository {ref.repo!r}, not {repo!r}")
        versions = schema_versions_tx(tx, ref.name, repo)
        for rec in reversed(versions):
            if ref.version is None or rec.version == ref.version:
                return rec.ref
        raise NotFoundError(f"no schema {spec!r} in repository {repo!r}")
    schema = spec if isinstance(spec, Schema) else Schema.from_type(spec)
    return add_schema_tx(tx, schema, repo=repo).ref


def add_lens(
    repo: Repository,
    *,
    name: str,
    source: SchemaSpec,
    target: SchemaSpec,
    getter: Callable[..., Any] | str,
    putter: Callable[..., Any] | str | None,
    description: str | None,
    replace: bool,
) -> LensEntry:
    validate_lens_name(name)
    getter_ref = code_ref(getter)
    putter_ref = code_ref(putter) if putter is not None else None
    with repo.provider.transaction() as tx:
        record = LensEntry(
            name=name,
            source_schema=schema_ref_tx(tx, source, repo.name),
            target_schema=schema_ref_tx(tx, target, repo.name),
            getter=getter_ref,
            putter=putter_ref,
            created_at=utc_now(),
            description=description,
            repo=repo.name,
        )
        old = tx.get("lens", name)
        if old is not None:
            current = LensEntry.from_record(old, repo=repo.name)
            if current.same_code(record):
                return current
            if not replace:
                raise ConflictError(
                    f"lens {name!r} is already recorded as {current.source_schema} -> "
                    f"{current.target_schema} by {current.getter}; pass replace=True to change it"
                )
        tx.put("lens", name, record.to_record())
    return record


def iter_lenses(repo: Repository) -> Iterator[LensEntry]:
    for _, record in repo.provider.iter_scan("lens"):
        yield LensEntry.from_record(record, repo=repo.name)
