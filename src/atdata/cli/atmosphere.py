"""The atmosphere commands: ``login``, ``logout``, ``publish``, and remote ``ls`` / ``inspect`` /
``preview`` / ``verify``.

``atdata login PDS_URL HANDLE`` logs in with an app password (``--password``, else
``$ATDATA_APP_PASSWORD``, else a hidden prompt) and keeps the session's tokens (never the
password) in ``$ATDATA_HOME/session.json``, readable only by you; refreshed tokens are written
back. ``atdata publish NAME[@v]`` publishes a dataset of the default index with that session.

Reading needs no login. ``@handle/name[@version]`` and ``at://`` references are resolved with:

* the PLC directory (DID documents): ``$ATDATA_PLC_URL``, else the ``--plc-url`` given to
  ``login``, else https://plc.directory;
* the service resolving handles (``com.atproto.identity.resolveHandle``):
  ``$ATDATA_HANDLE_RESOLVER``, else the ``--handle-resolver`` given to ``login``, else the PDS
  of the stored session, else https://bsky.social.

Every record read is validated and every shard verified (blobs against their CID, URLs against
the record's sha256) before it is trusted; a malformed or hostile record is an error (exit 1)
and nothing in it is executed.

The local commands call :func:`ls_remote`, :func:`inspect_remote`, :func:`preview_remote` and
:func:`verify_remote` for ``@handle`` / ``at://`` arguments (see :mod:`atdata.cli.app`).
"""

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ..errors import (
    AtdataError,
    AtdataWarning,
    AtmosphereError,
    AuthenticationError,
    IntegrityError,
)
from ..stores.base import ShardProblem
from ._samples import decode_fields
from ._shared import (
    CliError,
    ProgressBar,
    dataset_ref,
    emit_json,
    human_size,
    note,
    open_index,
    out_console,
)

if TYPE_CHECKING:
    from ..atmosphere import (
        AtmosphereClient,
        AtmosphereSession,
        PublishedDataset,
        ResolvedDataset,
        Resolver,
    )
    from ..sources.base import ShardSource

__all__ = [
    "HANDLE_RESOLVER_ENV",
    "PASSWORD_ENV",
    "PLC_ENV",
    "SESSION_FILE",
    "StoredLogin",
    "inspect_remote",
    "ls_remote",
    "preview_remote",
    "register",
    "session_path",
    "verify_remote",
]

#: Where the logged-in session is kept, under ``$ATDATA_HOME``.
SESSION_FILE = "session.json"
PASSWORD_ENV = "ATDATA_APP_PASSWORD"
# the names, for help texts (the same as atmosphere.resolve's, which is the one place that reads
# them; not imported from there so that the CLI starts without loading the atmosphere package)
PLC_ENV = "ATDATA_PLC_URL"
HANDLE_RESOLVER_ENV = "ATDATA_HANDLE_RESOLVER"
_FILE_VERSION = 1
_CHUNK = 1 << 20

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


# -- the stored session ---------------------------------------------------------------------------
def session_path() -> Path:
    """``$ATDATA_HOME/session.json``."""
    from ..index.repository import atdata_home

    return atdata_home() / SESSION_FILE


@dataclass(frozen=True)
class StoredLogin:
    """What ``atdata login`` keeps: the exported session and the resolution settings."""

    export: str
    pds: str
    did: str
    handle: str
    plc_url: str | None = None
    handle_resolver: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": _FILE_VERSION,
                "session": json.loads(self.export),
                "plc_url": self.plc_url,
                "handle_resolver": self.handle_resolver,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, where: Path) -> "StoredLogin":
        broken = CliError(f"{where} is not a session saved by `atdata login`; log in again")
        try:
            data = json.loads(text)
        except ValueError:
            raise broken from None
        if not isinstance(data, dict) or data.get("v") != _FILE_VERSION:
            raise broken
        session = data.get("session")
        if not isinstance(session, dict) or not all(
            isinstance(session.get(k), str) for k in ("pds", "did", "handle")
        ):
            raise broken
        settings = [data.get("plc_url"), data.get("handle_resolver")]
        if not all(s is None or isinstance(s, str) for s in settings):
            raise broken
        return cls(
            json.dumps(session),
            session["pds"],
            session["did"],
            session["handle"],
            settings[0],
            settings[1],
        )

    def with_export(self, export: str) -> "StoredLogin":
        fields = json.loads(export)
        return StoredLogin(
            export,
            fields["pds"],
            fields["did"],
            fields["handle"],
            self.plc_url,
            self.handle_resolver,
        )


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable and writable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def save_login(login: StoredLogin) -> Path:
    path = session_path()
    _write_private(path, login.to_json())
    return path


def load_login(*, required: bool) -> StoredLogin | None:
    """The stored login; None (or, when ``required``, an error saying to log in) without one."""
    path = session_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise CliError(f"not logged in (no {path}); run: atdata login PDS_URL HANDLE") from None
        return None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    if os.name == "posix" and path.stat().st_mode & 0o077:
        note(f"{path} is readable by other users; it grants access to your account: chmod 600 it")
    return StoredLogin.from_json(text, path)


def open_session(login: StoredLogin) -> "AtmosphereSession":
    """The stored session, restored; refreshed tokens are written back to the file."""
    from ..atmosphere import AtmosphereSession

    current = [login]

    def saved(export: str) -> None:
        current[0] = current[0].with_export(export)
        save_login(current[0])

    try:
        return AtmosphereSession.restore(login.export, verify=False, on_refresh=saved)
    except AuthenticationError as exc:
        raise _login_again(exc, login) from None


def _login_again(exc: AuthenticationError, login: StoredLogin) -> CliError:
    return CliError(f"{exc}; log in again: atdata login {login.pds} {login.handle}")


# -- resolution --------------------------------------------------------------------------------
def resolution_settings(login: StoredLogin | None) -> tuple[str, str]:
    """(PLC directory URL, handle-resolving service URL), from the environment, the stored
    login, then the public defaults (see the module docs)."""
    from ..atmosphere.resolve import resolution_settings as settings

    if login is None:
        return settings()
    return settings(login.plc_url, login.handle_resolver or login.pds)


def make_resolver() -> "Resolver":
    from ..atmosphere import Resolver

    plc, handles = resolution_settings(load_login(required=False))
    return Resolver(plc_url=plc, handle_resolver_pds=handles)


@contextlib.contextmanager
def _reader() -> Iterator["AtmosphereClient"]:
    """An anonymous client with the configured resolver, made current for blob URLs; atdata
    warnings (invalid records skipped) are printed as notes on stderr."""
    from ..atmosphere import AtmosphereClient

    resolver = make_resolver()
    try:
        with resolver.activate(), _warnings_as_notes():
            yield AtmosphereClient(resolver=resolver)
    finally:
        resolver.close()


@contextlib.contextmanager
def _warnings_as_notes() -> Iterator[list[str]]:
    """Collect atdata warnings (skipped invalid records) and print them as notes at the end."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AtdataWarning)
        try:
            yield messages
        finally:
            for w in caught:
                if issubclass(w.category, AtdataWarning):
                    messages.append(str(w.message))
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for message in messages:
        note(f"warning: {message}")


# -- login / logout ------------------------------------------------------------------------------
def login_command(
    pds_url: Annotated[
        str,
        typer.Argument(
            metavar="PDS_URL",
            help="Your PDS, like https://bsky.social or http://localhost:2583.",
            show_default=False,
        ),
    ],
    handle: Annotated[
        str,
        typer.Argument(metavar="HANDLE", help="Your handle (or DID).", show_default=False),
    ],
    password: Annotated[
        str,
        typer.Option(
            "--password",
            envvar=PASSWORD_ENV,
            prompt="App password",
            hide_input=True,
            show_default=False,
            help="An app password (prefer the environment variable or the prompt: command "
            "lines end up in shell history).",
        ),
    ],
    plc_url: Annotated[
        str | None,
        typer.Option(
            "--plc-url",
            help=f"PLC directory to resolve DIDs with, remembered (${PLC_ENV} overrides it; "
            "default https://plc.directory).",
            show_default=False,
        ),
    ] = None,
    handle_resolver: Annotated[
        str | None,
        typer.Option(
            "--handle-resolver",
            help=f"Service resolving handles, remembered (${HANDLE_RESOLVER_ENV} overrides it; "
            "default: this PDS).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Log in to a PDS with an app password and keep the session in $ATDATA_HOME/session.json.

    Only the session's tokens are stored (never the password), in a file only you can read.
    """
    from ..atmosphere import AtmosphereSession
    from ..atmosphere._http import check_service_url

    plc = check_service_url(plc_url, "--plc-url") if plc_url else None
    resolver = check_service_url(handle_resolver, "--handle-resolver") if handle_resolver else None
    session = AtmosphereSession.login(pds_url, handle, password)
    login = StoredLogin(
        session.export(), session.pds_url, session.did, session.handle, plc, resolver
    )
    path = save_login(login)
    out_console().print(
        Text.assemble(
            "Logged in as ",
            (f"@{session.handle}", "bold cyan"),
            f" ({session.did}) on {session.pds_url}",
        ),
        soft_wrap=True,
    )
    note(f"session saved to {path} (readable only by you); `atdata logout` revokes it")


def logout_command() -> None:
    """Revoke the stored session on its PDS and delete $ATDATA_HOME/session.json."""
    login = load_login(required=False)
    console = out_console()
    if login is None:
        console.print("not logged in")
        return
    from ..atmosphere import AtmosphereSession

    try:
        AtmosphereSession.restore(login.export, verify=False).logout()
    except AtmosphereError as exc:
        note(f"could not revoke the session on {login.pds} ({exc}); forgetting it anyway")
    session_path().unlink(missing_ok=True)
    console.print(Text.assemble("Logged out ", (f"@{login.handle}", "bold cyan")))


# -- publish --------------------------------------------------------------------------------------
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
    as_json: JsonOption = False,
) -> None:
    """Publish a dataset of the index to your ATProto repository (log in first).

    Writes its schema (once per distinct schema), an entry record and a label name@version;
    shards go up as blobs unless they are at http(s)/S3 URLs. Re-running writes nothing new.
    """
    ref = dataset_ref(name[len("@local/") :] if name.startswith("@local/") else name)
    login = load_login(required=True)
    assert login is not None
    session = open_session(login)
    try:
        with open_index() as index:
            published = index.publish(
                ref, to=session, storage=storage.value, split=split, replace_label=replace_label
            )
    except AuthenticationError as exc:
        raise _login_again(exc, login) from None
    _report_published(published, session.handle, as_json)


def _report_published(published: "PublishedDataset", handle: str, as_json: bool) -> None:
    entry = published.entry.value
    label = published.label
    version = label.value.version if label is not None else None
    load_ref = f"@{handle}/{entry.name}" + (f"@{version}" if version else "")
    kind, shards = _storage_kind(entry.storage), len(entry.storage.checksums())
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
    _facts(rows)
    note(f"load it with: atdata preview {load_ref}   or   load_dataset({load_ref!r})")


def _storage_kind(storage: Any) -> str:
    from ..atmosphere import BlobStorage, HttpStorage

    if isinstance(storage, BlobStorage):
        return "blob"
    return "http" if isinstance(storage, HttpStorage) else "s3"


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
    with _reader() as client, _warnings_as_notes() as skipped:
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
        labels_of.setdefault(lab.value.dataset_uri, []).append(_label_text(lab.value))
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
                        "storage": _storage_kind(e.value.storage),
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
            f"{len(e.value.storage.checksums())} {_storage_kind(e.value.storage)}",
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
            table.add_row(Text(_label_text(lab.value), style="cyan"), lab.value.dataset_uri)
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


def _label_text(label: Any) -> str:
    return f"{label.name}@{label.version}" if label.version else str(label.name)


def _field_names(record: Any) -> list[str]:
    return [f.name for f in record.to_schema().fields]


# -- inspect ------------------------------------------------------------------------------------
def _resolve(ref: str, client: "AtmosphereClient") -> "ResolvedDataset":
    from ..atmosphere import resolve_dataset

    return resolve_dataset(ref, client=client)


def _record_kind(ref: str) -> str | None:
    """The collection of an ``at://`` record URI, "repo" for a bare repository, None otherwise."""
    from ..atmosphere import AtUri

    if ref.startswith("at://"):
        at = AtUri.parse(ref)
        return at.collection or "repo"
    return "repo" if "/" not in ref else None


def inspect_remote(ref: str, *, as_json: bool) -> None:
    """``atdata inspect at://...|@handle/name[@v]``: entry, schema and shards of a published
    dataset (an ``at://`` schema or lens record is shown as such; ``@handle`` lists)."""
    from ..atmosphere.records import LENS, SCHEMA

    kind = _record_kind(ref)
    if kind == "repo":
        ls_remote(ref, as_json=as_json)
        return
    with _reader() as client:
        if kind == SCHEMA:
            _show_schema_record(client, ref, as_json)
            return
        if kind == LENS:
            _show_lens_record(client, ref, as_json)
            return
        resolved = _resolve(ref, client)
    _show_dataset(ref, resolved, as_json)


def _shard_rows(resolved: "ResolvedDataset") -> list[dict[str, Any]]:
    from ..atmosphere import BlobStorage

    storage = resolved.entry.storage
    blobs = storage.blobs if isinstance(storage, BlobStorage) else None
    rows = []
    for i, (url, checksum) in enumerate(zip(resolved.urls, resolved.checksums, strict=True)):
        rows.append(
            {
                "url": url,
                "size": blobs[i].blob.size if blobs is not None else None,
                "cid": blobs[i].blob.cid if blobs is not None else None,
                "sha256": checksum.digest
                if checksum is not None and checksum.algorithm == "sha256"
                else None,
            }
        )
    return rows


def _show_dataset(ref: str, resolved: "ResolvedDataset", as_json: bool) -> None:
    entry = resolved.entry
    label = resolved.label
    shards = _shard_rows(resolved)
    size = entry.size
    if as_json:
        emit_json(
            {
                "kind": "atmosphere-dataset",
                "ref": ref,
                "uri": str(resolved.uri),
                "did": resolved.uri.did,
                "name": entry.name,
                "version": label.value.version if label is not None else None,
                "label": str(label.uri) if label is not None else None,
                "description": entry.description,
                "tags": list(entry.tags),
                "license": entry.license,
                "metadata": dict(entry.metadata) if entry.metadata else None,
                "created_at": entry.created_at,
                "count": size.samples if size else None,
                "size": size.bytes if size else None,
                "storage": _storage_kind(entry.storage),
                "schema_uri": str(resolved.schema_uri),
                "schema": resolved.schema.to_dict(),
                "shards": shards,
            }
        )
        return
    from .schemas import SchemaInfo, schema_table

    console = out_console()
    console.print(
        Text.assemble(("Dataset ", "bold"), (entry.name, "bold cyan"), ("  " + ref, "dim")),
        soft_wrap=True,
    )
    facts = [
        ("uri", str(resolved.uri)),
        ("samples", f"{size.samples:,}" if size and size.samples is not None else "-"),
        ("shards", f"{len(shards)} ({_storage_kind(entry.storage)})"),
        ("size", human_size(size.bytes if size else None)),
        ("created", entry.created_at),
    ]
    if label is not None:
        facts.append(("label", f"{_label_text(label.value)}  {label.uri}"))
    if entry.description:
        facts.append(("description", entry.description))
    if entry.tags:
        facts.append(("tags", ", ".join(entry.tags)))
    if entry.license:
        facts.append(("license", entry.license))
    _facts(facts)
    console.print()
    schema = resolved.schema
    console.print(
        Text.assemble(
            ("Schema ", "bold"),
            f"{schema.name}@{schema.version}  ",
            (str(resolved.schema_uri), "dim"),
        ),
        soft_wrap=True,
    )
    console.print(schema_table(SchemaInfo(schema, f"{schema.name}@{schema.version}")))
    console.print()
    table = Table(header_style="bold", box=None, pad_edge=False)
    table.add_column("shard", overflow="fold")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("sha256", no_wrap=True)
    for row in shards:
        sha = row["sha256"]
        table.add_row(
            _short_url(row["url"]),
            human_size(row["size"]),
            (sha[:16] + "…") if sha else "- (checked by CID)",
        )
    console.print(table)


def _short_url(url: str) -> str:
    """Blob URLs without their ``?pds=`` part (the PDS is shown once, elsewhere)."""
    return url.split("?", 1)[0] if url.startswith("at://") else url


def _show_schema_record(client: "AtmosphereClient", ref: str, as_json: bool) -> None:
    from .schemas import SchemaInfo, schema_table

    stored = client.get_schema(ref)
    schema = stored.value.to_schema(where=str(stored.uri))
    if as_json:
        emit_json(
            {
                "kind": "atmosphere-schema",
                "uri": str(stored.uri),
                "cid": stored.cid,
                "name": schema.name,
                "version": schema.version,
                "created_at": stored.value.created_at,
                "schema": schema.to_dict(),
            }
        )
        return
    console = out_console()
    console.print(
        Text.assemble(
            ("Schema ", "bold"), (f"{schema.name}@{schema.version}", "bold cyan"), f"  {stored.uri}"
        ),
        soft_wrap=True,
    )
    if schema.description:
        console.print(Text(schema.description, style="dim"), soft_wrap=True)
    console.print(schema_table(SchemaInfo(schema, f"{schema.name}@{schema.version}")))


def _show_lens_record(client: "AtmosphereClient", ref: str, as_json: bool) -> None:
    stored = client.get_lens(ref)
    lens = stored.value
    if as_json:
        emit_json(
            {
                "kind": "atmosphere-lens",
                "uri": str(stored.uri),
                "cid": stored.cid,
                "name": lens.name,
                "description": lens.description,
                "source_schema": lens.source_schema,
                "target_schema": lens.target_schema,
                "getter": lens.getter.to_dict(),
                "putter": lens.putter.to_dict(),
            }
        )
        return
    out_console().print(
        Text.assemble(("Lens ", "bold"), (lens.name, "bold cyan"), f"  {stored.uri}"),
        soft_wrap=True,
    )
    _facts(
        [
            ("from", lens.source_schema),
            ("to", lens.target_schema),
            ("getter", f"{lens.getter.repository} @ {lens.getter.commit}: {lens.getter.path}"),
            ("putter", f"{lens.putter.repository} @ {lens.putter.commit}: {lens.putter.path}"),
            ("description", lens.description or "-"),
        ]
    )
    note("lens code is only referenced; atdata never fetches or runs it")


def _facts(rows: list[tuple[str, str]]) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    out_console().print(table)


# -- preview --------------------------------------------------------------------------------------
def _dataset_ref_only(ref: str, command: str) -> None:
    kind = _record_kind(ref)
    if kind is not None and kind not in ("science.alt.dataset.entry", "science.alt.dataset.label"):
        raise CliError(
            f"{command} takes a dataset (@handle/name[@version], or an at:// entry or label "
            f"URI); {ref!r:.200} is not one"
        )


def _verified_source(url: str, checksum: Any) -> "ShardSource":
    """The shard at ``url``, checked as it is read: blobs against their CID (before any byte is
    used), other URLs against the record's sha256 (when the shard has been read through)."""
    from ..sources import open_source
    from ..sources.cache import wrap_source

    sha = None
    if checksum is not None and checksum.algorithm == "sha256" and not url.startswith("at://"):
        sha = checksum.digest
    return wrap_source(open_source(url), expected_sha256=sha)


def _raw_samples(source: "ShardSource") -> Generator[tuple[str, dict[str, Any]], None, None]:
    """``(key, fields)`` of each sample of one shard (as ``atdata preview`` shows them)."""
    from ..codec import unpack_map
    from ..shards.reader import iter_members
    from ..shards.tar import split_name

    key: str | None = None
    parts: dict[str, Any] = {}
    for member, body in iter_members(source):
        mkey, suffix = split_name(member.name)
        if mkey != key:
            if key is not None:
                yield key, parts
            key, parts = mkey, {}
        if suffix == "msgpack":
            parts.update(unpack_map(body, views=False))
        else:
            parts[suffix] = bytes(body)
    if key is not None:
        yield key, parts


def preview_remote(ref: str, *, limit: int, as_json: bool) -> None:
    """``atdata preview @handle/name``: the first samples of a published dataset."""
    _dataset_ref_only(ref, "preview")
    rows: list[tuple[str, dict[str, Any]]] = []
    with _reader() as client:
        resolved = _resolve(ref, client)
        for url, checksum in zip(resolved.urls, resolved.checksums, strict=True):
            samples = _raw_samples(_verified_source(url, checksum))
            with contextlib.closing(samples):
                for key, fields in samples:
                    rows.append((key, decode_fields(fields, resolved.schema)))
                    if len(rows) >= limit:
                        break
            if len(rows) >= limit:
                break
    from .inspection import show_samples

    show_samples(ref, rows, resolved.schema, as_json)


# -- verify ---------------------------------------------------------------------------------------
def verify_remote(ref: str, *, as_json: bool) -> None:
    """``atdata verify @handle/name``: download every shard and check it against its record
    (blobs: CID, size and sha256; URLs: sha256). Exit 1 when anything differs."""
    from ..sources import open_source
    from .verify import Outcome

    _dataset_ref_only(ref, "verify")
    problems: list[ShardProblem] = []
    done = 0
    with _reader() as client:
        resolved = _resolve(ref, client)
        rows = _shard_rows(resolved)
        total = resolved.entry.size.bytes if resolved.entry.size else None
        with ProgressBar(f"verifying {ref}", total, unit="bytes", enabled=not as_json) as bar:
            for row in rows:
                url = row["url"]
                shown = _short_url(url)
                hasher = hashlib.sha256()
                size = 0
                try:
                    with open_source(url).open() as stream:
                        while chunk := stream.read(_CHUNK):
                            hasher.update(chunk)
                            size += len(chunk)
                            bar.advance(len(chunk))
                except IntegrityError as exc:  # a blob that does not hash to its CID
                    text = str(exc)
                    problems.append(ShardProblem(shown, text.split(" [shard ", 1)[0]))
                    continue
                except (AtdataError, OSError) as exc:
                    problems.append(ShardProblem(shown, f"cannot be read: {exc}"))
                    continue
                done += size
                if row["size"] is not None and size != row["size"]:
                    problems.append(
                        ShardProblem(shown, "size differs", str(row["size"]), str(size))
                    )
                elif row["sha256"] is not None and hasher.hexdigest() != row["sha256"]:
                    problems.append(
                        ShardProblem(shown, "sha256 differs", row["sha256"], hasher.hexdigest())
                    )
    outcome = Outcome(ref, len(rows), done, problems)
    if as_json:
        emit_json({**outcome.to_dict(), "uri": str(resolved.uri)})
    else:
        console = out_console()
        if problems:
            console.print(
                Text(
                    f"✗ {len(problems)} of {len(rows)} shard(s) of {ref} do not match their record:",
                    style="bold red",
                ),
                soft_wrap=True,
            )
            for p in problems:
                console.print(Text(f"  {p}", style="red"), soft_wrap=True)
        else:
            console.print(
                Text(
                    f"✓ {len(rows)} shard(s) of {ref} match their record "
                    f"({human_size(done)} downloaded and re-hashed)",
                    style="bold green",
                ),
                soft_wrap=True,
            )
    if problems:
        raise typer.Exit(1)


# -- registration ----------------------------------------------------------------------------------
def register(app: typer.Typer) -> None:
    app.command("login", short_help="Log in to a PDS (ATProto) with an app password.")(
        login_command
    )
    app.command("logout", short_help="Revoke and forget the stored session.")(logout_command)
    app.command("publish", short_help="Publish an index dataset to your ATProto repository.")(
        publish_command
    )
