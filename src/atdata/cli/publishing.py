"""``atdata publish NAME[@v]`` and ``atdata ls @handle``: writing datasets to the atmosphere and
listing what an account published.

``publish`` publishes a dataset of the default index with the stored login (``atdata login``);
``ls @handle`` needs no login. Records that fail validation are skipped by ``ls`` with a warning
on stderr (``skipped`` in ``--json``); nothing in a record is executed.
"""

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ..errors import AuthenticationError
from ._hub import publish_to_hub_command
from ._remote import label_text, load_login, reader, storage_kind, warnings_as_notes
from ._shared import (
    CliError,
    JsonOption,
    dataset_ref,
    emit_json,
    human_size,
    note,
    open_index,
    out_console,
    print_facts,
)

if TYPE_CHECKING:
    from ..atmosphere import PublishedDataset

__all__ = ["ls_remote", "publish_command", "register"]


class StorageChoice(StrEnum):
    auto = "auto"
    urls = "urls"
    blobs = "blobs"


def publish_command(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME[@VERSION]",
            help="A dataset in the index (name, name@3, @local/name@3; no version: the latest).",
            show_default=False,
        ),
    ],
    *,
    storage: Annotated[
        StorageChoice,
        typer.Option(
            "--storage",
            help="auto: reference shards by URL when all are http(s) or all s3, else upload "
            "them as blobs; urls: only by URL; blobs: always upload.",
            case_sensitive=False,
        ),
    ] = StorageChoice.auto,
    split: Annotated[
        bool,
        typer.Option("--split", help="Cut shards over the PDS blob limit at sample boundaries."),
    ] = False,
    replace_label: Annotated[
        bool,
        typer.Option(
            "--replace-label",
            help="Move an existing label name@version that points at another entry.",
        ),
    ] = False,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="hf://datasets/ORG/NAME",
            help="Publish to this Hugging Face Hub dataset repository instead of the "
            "atmosphere (token: $HF_TOKEN or `hf auth login`).",
            show_default=False,
        ),
    ] = None,
    private: Annotated[
        bool,
        typer.Option("--private", help="With --to: create the Hub repository private."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Publish a dataset of the index to your ATProto repository (log in first).

    Writes its schema (once per distinct schema), an entry record and a label name@version;
    shards go up as blobs unless they are at http(s)/S3 URLs. Re-running writes nothing new.
    With --to hf://datasets/ORG/NAME: one commit to that Hub repository (shards, sidecars and
    a dataset card); nothing when it already holds this version.
    """
    ref = dataset_ref(name[len("@local/") :] if name.startswith("@local/") else name)
    if to is not None:
        publish_to_hub_command(ref, to, private=private, as_json=as_json)
        return
    from ..atmosphere.credentials import login_again, open_session

    login = load_login(required=True)
    assert login is not None
    session = open_session(login)
    try:
        with open_index() as index:
            published = index.publish(
                ref, to=session, storage=storage.value, split=split, replace_label=replace_label
            )
    except AuthenticationError as exc:
        raise login_again(exc, login) from None
    _report_published(published, session.handle, as_json)


def _report_published(published: "PublishedDataset", handle: str, as_json: bool) -> None:
    entry = published.entry.value
    label = published.label
    version = label.value.version if label is not None else None
    load_ref = f"@{handle}/{entry.name}" + (f"@{version}" if version else "")
    kind, shards = storage_kind(entry.storage), len(entry.storage.checksums())
    if as_json:
        emit_json(
            {
                "created": published.created,
                "ref": load_ref,
                "name": entry.name,
                "version": version,
                "entry": str(published.entry.uri),
                "entry_cid": published.entry.cid,
                "schema": str(published.schema.uri),
                "label": str(label.uri) if label is not None else None,
                "storage": kind,
                "shards": shards,
                "samples": entry.size.samples if entry.size else None,
                "bytes": entry.size.bytes if entry.size else None,
            }
        )
        return
    console = out_console()
    headline = "Published " if published.created else "Already published (nothing new written): "
    console.print(
        Text.assemble(headline, (load_ref, "bold cyan")),
        soft_wrap=True,
    )
    size = entry.size.bytes if entry.size else None
    rows = [
        ("entry", str(published.entry.uri)),
        ("schema", str(published.schema.uri)),
        ("label", f"{label.value.name}@{version}  {label.uri}" if label is not None else "-"),
        ("storage", f"{shards} {kind} shard(s), {human_size(size)}"),
    ]
    print_facts(rows)
    note(f"load it with: atdata preview {load_ref}   or   load_dataset({load_ref!r})")


# -- ls @handle -------------------------------------------------------------------------------
def _account_of(text: str) -> str:
    """The account (handle or DID) an ``@handle`` / ``@did`` / ``at://did`` argument names."""
    from ..atmosphere import AtUri
    from ..atmosphere.uri import is_did, is_handle

    if text.startswith("at://"):
        at = AtUri.parse(text)
        if at.collection is not None:
            raise CliError(f"{text!r:.200} names a record; use: atdata inspect {text}")
        return at.authority
    account = text[1:] if text.startswith("@") else text
    if "/" in account:
        raise CliError(
            f"{text!r:.200}: ls lists a whole account (@handle); for one dataset use: "
            f"atdata inspect {text}"
        )
    if not (is_handle(account) or is_did(account)):
        raise CliError(f"{text!r:.200} is not a handle (@alice.example.com) or a DID")
    return account.lower() if is_handle(account) else account


def ls_remote(handle: str, *, as_json: bool) -> None:
    """``atdata ls @handle``: the datasets, labels, schemas and lenses the account published."""
    account = _account_of(handle)
    with reader() as client, warnings_as_notes() as skipped:
        did = client.account_did(account)
        pds = client.pds_for(did)
        entries = sorted(
            client.entries(did, on_invalid="skip"),
            key=lambda e: (e.value.name, e.value.created_at),
        )
        labels = sorted(
            client.labels(did, on_invalid="skip"),
            key=lambda lab: (lab.value.name, lab.value.version or "", lab.value.created_at),
        )
        schemas = sorted(
            client.schemas(did, on_invalid="skip"),
            key=lambda s: (s.value.name, s.value.version),
        )
        lenses = sorted(client.lenses(did, on_invalid="skip"), key=lambda x: x.value.name)
    name = f"@{account}" if not account.startswith("did:") else account
    labels_of: dict[str, list[str]] = {}
    for lab in labels:
        labels_of.setdefault(lab.value.dataset_uri, []).append(label_text(lab.value))
    if as_json:
        emit_json(
            {
                "repo": name,
                "did": did,
                "pds": pds,
                "datasets": [
                    {
                        "name": e.value.name,
                        "uri": str(e.uri),
                        "cid": e.cid,
                        "labels": labels_of.get(str(e.uri), []),
                        "description": e.value.description,
                        "tags": list(e.value.tags),
                        "license": e.value.license,
                        "storage": storage_kind(e.value.storage),
                        "shards": len(e.value.storage.checksums()),
                        "samples": e.value.size.samples if e.value.size else None,
                        "bytes": e.value.size.bytes if e.value.size else None,
                        "schema": e.value.schema_ref,
                        "created_at": e.value.created_at,
                    }
                    for e in entries
                ],
                "labels": [
                    {
                        "name": lab.value.name,
                        "version": lab.value.version,
                        "uri": str(lab.uri),
                        "dataset": lab.value.dataset_uri,
                        "created_at": lab.value.created_at,
                    }
                    for lab in labels
                ],
                "schemas": [
                    {
                        "name": s.value.name,
                        "version": s.value.version,
                        "uri": str(s.uri),
                        "fields": _field_names(s.value),
                        "created_at": s.value.created_at,
                    }
                    for s in schemas
                ],
                "lenses": [
                    {
                        "name": x.value.name,
                        "uri": str(x.uri),
                        "source_schema": x.value.source_schema,
                        "target_schema": x.value.target_schema,
                        "getter": x.value.getter.to_dict(),
                        "putter": x.value.putter.to_dict(),
                    }
                    for x in lenses
                ],
                "skipped": skipped,
            }
        )
        return
    console = out_console()
    console.print(
        Text.assemble((name, "bold cyan"), f"  {did} on {pds}"),
        soft_wrap=True,
    )
    if not (entries or labels or schemas or lenses):
        console.print("nothing published yet")
        return
    schema_names = {str(s.uri): f"{s.value.name}@{s.value.version}" for s in schemas}
    table = _table("Datasets")
    for col in ("dataset", "labels", "samples", "shards", "size", "schema", "created", "uri"):
        table.add_column(col, overflow="fold", justify="right" if col in _NUMERIC else "left")
    for e in entries:
        size = e.value.size
        table.add_row(
            Text(e.value.name, style="cyan"),
            ", ".join(labels_of.get(str(e.uri), [])) or "-",
            f"{size.samples:,}" if size and size.samples is not None else "-",
            f"{len(e.value.storage.checksums())} {storage_kind(e.value.storage)}",
            human_size(size.bytes if size else None),
            schema_names.get(e.value.schema_ref, e.value.schema_ref.rsplit("/", 1)[-1]),
            e.value.created_at[:10],
            str(e.uri),
        )
    console.print(table)
    if labels:
        table = _table("Labels")
        for col in ("label", "dataset"):
            table.add_column(col, overflow="fold")
        for lab in labels:
            table.add_row(Text(label_text(lab.value), style="cyan"), lab.value.dataset_uri)
        console.print(table)
    if schemas:
        table = _table("Schemas")
        for col in ("schema", "fields", "uri"):
            table.add_column(col, overflow="fold")
        for s in schemas:
            table.add_row(
                Text(f"{s.value.name}@{s.value.version}", style="cyan"),
                ", ".join(_field_names(s.value)),
                str(s.uri),
            )
        console.print(table)
    if lenses:
        table = _table("Lenses")
        for col in ("lens", "from -> to", "code", "uri"):
            table.add_column(col, overflow="fold")
        for x in lenses:
            lens = x.value
            table.add_row(
                Text(lens.name, style="cyan"),
                f"{schema_names.get(lens.source_schema, lens.source_schema)} -> "
                f"{schema_names.get(lens.target_schema, lens.target_schema)}",
                f"{lens.getter.repository} @ {lens.getter.commit[:12]}: {lens.getter.path}",
                str(x.uri),
            )
        console.print(table)


_NUMERIC = ("samples", "shards", "size")


def _table(title: str) -> Table:
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        header_style="bold",
        box=None,
        pad_edge=False,
    )


def _field_names(record: Any) -> list[str]:
    return [f.name for f in record.to_schema().fields]


def register(app: typer.Typer) -> None:
    app.command("publish", short_help="Publish an index dataset to your ATProto repository.")(
        publish_command
    )
