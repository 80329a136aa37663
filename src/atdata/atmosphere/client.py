"""Reading and writing ``science.alt.dataset`` records and blobs in ATProto repositories.

:class:`AtmosphereClient` reads any account's records anonymously, from the PDS named in that
account's DID document (found with a :class:`~atdata.atmosphere.resolve.Resolver`), and writes
to the logged-in account's own repository through an
:class:`~atdata.atmosphere.session.AtmosphereSession`. Listing follows ``listRecords`` cursors
to the end. Records are validated against the lexicon before they are written and after they
are read; typed listings either raise on a malformed record or, with ``on_invalid="skip"``,
warn and go on.
"""

import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from ..errors import (
    AtdataWarning,
    AtmosphereError,
    AuthenticationError,
    InvalidArgumentError,
    SourceError,
)
from ..net.ids import blob_cid
from ..sources.at import AtBlobSource, blob_url
from ._http import HttpReader, ServiceUnreachable, XrpcError
from .lexicon import NAMESPACE, RecordValidationError, lexicon, validate_object, validate_record
from .records import SCHEMA, DatasetRecord, LabelRecord, LensRecord, SchemaRecord
from .resolve import Resolver
from .session import AtmosphereSession
from .storage import BLOB_MIME_TYPE, BlobRef
from .uri import AtUri, is_cid, is_did

__all__ = ["MAX_PAGE_SIZE", "AtmosphereClient", "OnInvalid", "StoredRecord"]

R = TypeVar("R")
AnyRecord = TypeVar("AnyRecord", SchemaRecord, DatasetRecord, LensRecord, LabelRecord)
OnInvalid = Literal["raise", "skip"]

MAX_RECORD_BYTES = 4 << 20
MAX_PAGE_BYTES = 64 << 20
MAX_PAGE_SIZE = 100
#: XRPC errors of a PDS that no longer (or never did) hold the repository asked for
_MOVED_ERRORS = frozenset(
    {"RepoNotFound", "AccountNotFound", "RepoDeactivated", "AccountDeactivated", "RepoTakendown"}
)


@dataclass(frozen=True)
class StoredRecord(Generic[R]):
    """A record as stored in a repository: its URI, its CID and its (typed) value."""

    uri: AtUri
    cid: str
    value: R


def _written(
    answer: Mapping[str, Any], record: dict[str, Any], what: str
) -> "StoredRecord[dict[str, Any]]":
    """The stored record of a createRecord/putRecord answer (``uri`` and ``cid``, checked)."""
    uri, cid = answer.get("uri"), answer.get("cid")
    if not isinstance(uri, str) or not is_cid(cid):
        raise AtmosphereError(f"{what}: the PDS answered without a record URI and CID")
    return StoredRecord(AtUri.parse(uri), str(cid), record)


def _lexicon_blob_limit() -> int:
    main = lexicon(f"{NAMESPACE}.storageBlobs")["defs"]["blobEntry"]
    return int(main["properties"]["blob"]["maxSize"])


class AtmosphereClient:
    """Records and blobs over XRPC: reads for anyone, writes for ``session``'s account.

    ``resolver`` finds other accounts' PDSes and resolves handles; without one, only the
    session's own repository can be read (from its PDS, directly).
    """

    def __init__(
        self, session: AtmosphereSession | None = None, *, resolver: Resolver | None = None
    ) -> None:
        self.session = session
        self.resolver = resolver
        self._http = resolver.http if resolver is not None else HttpReader()

    def __repr__(self) -> str:
        return f"AtmosphereClient(session={self.session!r}, resolver={self.resolver!r})"

    def _need_resolver(self, what: str) -> Resolver:
        if self.resolver is None:
            raise AtmosphereError(
                f"{what} needs a Resolver: AtmosphereClient(session, resolver=Resolver(...))"
            )
        return self.resolver

    # -- where ------------------------------------------------------------------------------
    def account_did(self, account: str) -> str:
        """The DID of ``account`` (a DID, or a handle with or without ``@``)."""
        if is_did(account):
            return account
        if self.session is not None and account.lstrip("@").lower() == self.session.handle.lower():
            return self.session.did
        return self._need_resolver(f"resolving {account}").resolve_handle(account)

    def pds_for(self, did: str) -> str:
        """The PDS base URL holding ``did``'s repository."""
        if self.session is not None and did == self.session.did:
            return self.session.pds_url
        return self._need_resolver(f"finding the PDS of {did}").pds_endpoint(did)

    def _at_pds(self, did: str, call: Callable[[str], R]) -> R:
        """``call(pds)`` on ``did``'s PDS. When that PDS came from a (possibly kept) DID document
        and cannot be reached or says it does not hold the repository, the document is fetched
        afresh and, if it names another PDS, ``call`` runs once more there (the account moved)."""
        pds = self.pds_for(did)
        try:
            return call(pds)
        except (XrpcError, ServiceUnreachable, SourceError) as exc:
            if self.resolver is None or (self.session is not None and did == self.session.did):
                raise
            if isinstance(exc, XrpcError) and exc.error not in _MOVED_ERRORS:
                raise
            self.resolver.forget(did)
            try:
                fresh = self.resolver.pds_endpoint(did)
            except AtmosphereError:
                raise exc from None
            if fresh == pds:
                raise
        return call(fresh)

    def _me(self) -> AtmosphereSession:
        if self.session is None:
            raise AtmosphereError(
                "writing records needs a session: AtmosphereClient(resolver, session)"
            )
        return self.session

    # -- raw reads --------------------------------------------------------------------------
    def get_record(self, uri: str | AtUri) -> StoredRecord[dict[str, Any]]:
        """The record at ``uri`` (its authority may be a handle); XrpcError if it is absent."""
        at = AtUri.parse(uri) if isinstance(uri, str) else uri
        if at.rkey is None or at.collection is None:
            raise AtmosphereError(f"{at} does not name a record (at://<did>/<collection>/<rkey>)")
        did = self.account_did(at.authority)
        want = AtUri(did, at.collection, at.rkey)
        data = self._at_pds(
            did,
            lambda pds: self._http.xrpc(
                pds,
                "com.atproto.repo.getRecord",
                {"repo": did, "collection": at.collection or "", "rkey": at.rkey or ""},
                max_bytes=MAX_RECORD_BYTES,
                what=f"reading {want} from {pds}",
            ),
        )
        return self._stored(data, want.collection or "", did, str(want))

    def _stored(
        self, data: Mapping[str, Any], collection: str, did: str, where: str
    ) -> StoredRecord[dict[str, Any]]:
        try:
            uri = AtUri.parse(data["uri"])
        except (KeyError, TypeError, AtmosphereError):
            raise AtmosphereError(f"{where}: the PDS answered without a valid record URI") from None
        if uri.authority != did or uri.collection != collection or uri.rkey is None:
            raise AtmosphereError(f"{where}: the PDS answered a record from elsewhere ({uri})")
        cid, value = data.get("cid"), data.get("value")
        if not is_cid(cid):
            raise AtmosphereError(f"{where}: the PDS answered without a valid record CID")
        if not isinstance(value, dict):
            raise AtmosphereError(f"{where}: the record value is not an object")
        return StoredRecord(uri, str(cid), value)

    def records(
        self, account: str, collection: str, *, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[StoredRecord[dict[str, Any]]]:
        """Every record of ``collection`` in ``account``, page by page until the cursor runs out."""
        for page in self.record_pages(account, collection, page_size=page_size):
            yield from page

    def record_pages(
        self, account: str, collection: str, *, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[list[StoredRecord[dict[str, Any]]]]:
        """:meth:`records` a page at a time (the next page is only asked for when the caller
        takes it, so work on one page can overlap fetching the next)."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidArgumentError(f"page_size must be 1..{MAX_PAGE_SIZE}")
        did = self.account_did(account)
        cursor: str | None = None
        seen: set[str] = set()
        pds = ""

        def list_page(at: str) -> dict[str, Any]:
            nonlocal pds
            pds = at
            params: dict[str, str | int] = {
                "repo": did,
                "collection": collection,
                "limit": page_size,
            }
            if cursor is not None:
                params["cursor"] = cursor
            return self._http.xrpc(
                at,
                "com.atproto.repo.listRecords",
                params,
                max_bytes=MAX_PAGE_BYTES,
                what=f"listing {collection} of {did} on {at}",
            )

        while True:
            # the first page finds the PDS (again, if the account moved); the rest stay there
            page = self._at_pds(did, list_page) if cursor is None else list_page(pds)
            where = f"listing {collection} of {did} on {pds}"
            items = page.get("records")
            if not isinstance(items, list) or len(items) > page_size:
                raise AtmosphereError(f"{where}: malformed page (records missing or too many)")
            stored = []
            for item in items:
                if not isinstance(item, dict):
                    raise AtmosphereError(f"{where}: a listed record is not an object")
                stored.append(self._stored(item, collection, did, where))
            yield stored
            nxt = page.get("cursor")
            if not items or nxt is None:
                return
            if not isinstance(nxt, str) or len(nxt) > 1024 or nxt in seen:
                raise AtmosphereError(f"{where}: the PDS returned a bad or repeated cursor")
            seen.add(nxt)
            cursor = nxt

    def list_records(
        self, account: str, collection: str, *, page_size: int = MAX_PAGE_SIZE
    ) -> list[StoredRecord[dict[str, Any]]]:
        return list(self.records(account, collection, page_size=page_size))

    # -- typed reads --------------------------------------------------------------------------
    def _typed(
        self, cls: type[AnyRecord], stored: StoredRecord[dict[str, Any]]
    ) -> StoredRecord[AnyRecord]:
        value = cls.from_record(stored.value, uri=str(stored.uri))
        return StoredRecord(stored.uri, stored.cid, value)

    def _get_typed(self, cls: type[AnyRecord], uri: str | AtUri) -> StoredRecord[AnyRecord]:
        at = AtUri.parse(uri) if isinstance(uri, str) else uri
        if at.collection != cls.NSID:
            raise AtmosphereError(f"{at} is not a {cls.NSID} record")
        return self._typed(cls, self.get_record(at))

    def _iter_typed(
        self, cls: type[AnyRecord], account: str, on_invalid: OnInvalid, page_size: int
    ) -> Iterator[StoredRecord[AnyRecord]]:
        for page in self._typed_pages(cls, account, on_invalid, page_size):
            yield from page

    def _typed_pages(
        self, cls: type[AnyRecord], account: str, on_invalid: OnInvalid, page_size: int
    ) -> Iterator[list[StoredRecord[AnyRecord]]]:
        for page in self.record_pages(account, cls.NSID, page_size=page_size):
            typed = []
            for stored in page:
                try:
                    typed.append(self._typed(cls, stored))
                except AtmosphereError as exc:
                    if on_invalid == "raise":
                        raise
                    warnings.warn(f"skipping invalid record: {exc}", AtdataWarning, stacklevel=4)
            yield typed

    def get_schema(self, uri: str | AtUri) -> StoredRecord[SchemaRecord]:
        return self._get_typed(SchemaRecord, uri)

    def get_entry(self, uri: str | AtUri) -> StoredRecord[DatasetRecord]:
        return self._get_typed(DatasetRecord, uri)

    def get_lens(self, uri: str | AtUri) -> StoredRecord[LensRecord]:
        return self._get_typed(LensRecord, uri)

    def get_label(self, uri: str | AtUri) -> StoredRecord[LabelRecord]:
        return self._get_typed(LabelRecord, uri)

    def schemas(
        self, account: str, *, on_invalid: OnInvalid = "raise", page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[StoredRecord[SchemaRecord]]:
        return self._iter_typed(SchemaRecord, account, on_invalid, page_size)

    def entries(
        self, account: str, *, on_invalid: OnInvalid = "raise", page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[StoredRecord[DatasetRecord]]:
        return self._iter_typed(DatasetRecord, account, on_invalid, page_size)

    def lenses(
        self, account: str, *, on_invalid: OnInvalid = "raise", page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[StoredRecord[LensRecord]]:
        return self._iter_typed(LensRecord, account, on_invalid, page_size)

    def labels(
        self, account: str, *, on_invalid: OnInvalid = "raise", page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[StoredRecord[LabelRecord]]:
        return self._iter_typed(LabelRecord, account, on_invalid, page_size)

    def label_pages(
        self, account: str, *, on_invalid: OnInvalid = "raise", page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[list[StoredRecord[LabelRecord]]]:
        """:meth:`labels` a page at a time (see :meth:`record_pages`)."""
        return self._typed_pages(LabelRecord, account, on_invalid, page_size)

    def list_schemas(
        self, account: str, *, on_invalid: OnInvalid = "raise"
    ) -> list[StoredRecord[SchemaRecord]]:
        return list(self.schemas(account, on_invalid=on_invalid))

    def list_entries(
        self, account: str, *, on_invalid: OnInvalid = "raise"
    ) -> list[StoredRecord[DatasetRecord]]:
        return list(self.entries(account, on_invalid=on_invalid))

    def list_lenses(
        self, account: str, *, on_invalid: OnInvalid = "raise"
    ) -> list[StoredRecord[LensRecord]]:
        return list(self.lenses(account, on_invalid=on_invalid))

    def list_labels(
        self, account: str, *, on_invalid: OnInvalid = "raise"
    ) -> list[StoredRecord[LabelRecord]]:
        return list(self.labels(account, on_invalid=on_invalid))

    # -- writes -------------------------------------------------------------------------------
    def create_record(
        self, collection: str, value: Mapping[str, Any], *, rkey: str | None = None
    ) -> StoredRecord[dict[str, Any]]:
        """Create a record in the session's repository (validated first for our namespace)."""
        me = self._me()
        record = dict(value)
        if collection.startswith(NAMESPACE + "."):
            validate_record(collection, record, where=f"new {collection} record")
        did = me.did
        body: dict[str, Any] = {
            "repo": did,
            "collection": collection,
            "record": record,
            "validate": False,
        }
        if rkey is not None:
            body["rkey"] = rkey
        resp = me.procedure(
            "com.atproto.repo.createRecord", body, f"creating a {collection} record in {did}"
        )
        return _written(resp, record, f"creating a {collection} record in {did}")

    def put_record(
        self, collection: str, rkey: str, value: Mapping[str, Any]
    ) -> StoredRecord[dict[str, Any]]:
        """Create or replace the record ``rkey`` in the session's repository."""
        me = self._me()
        record = dict(value)
        if collection.startswith(NAMESPACE + "."):
            validate_record(collection, record, where=f"{collection}/{rkey}")
        did = me.did
        what = f"writing {collection}/{rkey} in {did}"
        resp = me.procedure(
            "com.atproto.repo.putRecord",
            {
                "repo": did,
                "collection": collection,
                "rkey": rkey,
                "record": record,
                "validate": False,
            },
            what,
        )
        return _written(resp, record, what)

    def delete_record(self, uri: str | AtUri) -> None:
        """Delete a record of the session's repository."""
        me = self._me()
        at = AtUri.parse(uri) if isinstance(uri, str) else uri
        if at.authority != me.did or at.collection is None or at.rkey is None:
            raise AtmosphereError(f"{at} is not a record of {me.did}")
        me.procedure(
            "com.atproto.repo.deleteRecord",
            {"repo": me.did, "collection": at.collection, "rkey": at.rkey},
            f"deleting {at}",
        )

    def publish(self, record: AnyRecord, *, rkey: str | None = None) -> StoredRecord[AnyRecord]:
        """Create a typed record (schemas: see :meth:`publish_schema`, which deduplicates)."""
        stored = self.create_record(record.NSID, record.to_record(), rkey=rkey)
        return StoredRecord(stored.uri, stored.cid, record)

    def publish_schema(self, record: SchemaRecord) -> StoredRecord[SchemaRecord]:
        """Publish a schema once: its record key is the CID of its content, so an identical
        schema already in the repository is found and reused instead of written again."""
        me = self._me()
        rkey = record.record_key()
        uri = AtUri(me.did, SCHEMA, rkey)
        existing: StoredRecord[SchemaRecord] | None = None
        try:
            existing = self.get_schema(uri)
        except XrpcError as exc:
            if exc.error != "RecordNotFound":
                raise
        except RecordValidationError:
            pass  # junk under our key: replaced below
        if existing is not None and existing.value.content() == record.content():
            return existing
        stored = self.put_record(SCHEMA, rkey, record.to_record())
        return StoredRecord(stored.uri, stored.cid, record)

    # -- blobs --------------------------------------------------------------------------------
    def max_blob_bytes(self) -> int:
        """The largest blob this client will upload: the lexicon's limit, or the PDS's if lower."""
        limit = _lexicon_blob_limit()
        pds_limit = self._me().blob_upload_limit()
        return min(limit, pds_limit) if pds_limit is not None else limit

    def upload_blob(
        self, data: bytes, *, mime_type: str = BLOB_MIME_TYPE, cid: str | None = None
    ) -> BlobRef:
        """Upload ``data`` as a blob; refused before sending if over :meth:`max_blob_bytes`.

        A blob no record refers to is dropped by the PDS after a while: reference it (e.g. in an
        entry's ``storageBlobs``) soon after uploading. ``cid``, when the caller has already
        hashed the bytes, saves hashing them again; the PDS's answer is checked against it.
        """
        me = self._me()
        limit = self.max_blob_bytes()
        if len(data) > limit:
            raise AtmosphereError(
                f"a {len(data)}-byte blob is over the {limit}-byte limit (lexicon maxSize and the "
                f"PDS's blobUploadLimit); split the shard into smaller ones (e.g. ShardWriter "
                "max_size) before uploading"
            )
        cid = cid or blob_cid(data)
        what = f"uploading a {len(data)}-byte blob to {me.pds_url}"
        for attempt in (0, 1):
            headers = {**me.auth_headers(), "Content-Type": mime_type}
            try:
                answer = self._http.post(
                    f"{me.pds_url}/xrpc/com.atproto.repo.uploadBlob",
                    content=data,
                    headers=headers,
                    max_bytes=65536,
                    what=what,
                )
                break
            except XrpcError as exc:
                if attempt == 0 and exc.error == "ExpiredToken":
                    me.refresh()
                    continue
                if exc.status in (401, 403) or exc.error in (
                    "AuthenticationRequired",
                    "InvalidToken",
                ):
                    raise AuthenticationError(str(exc)) from None
                raise
        blob = answer.get("blob") if isinstance(answer, dict) else None
        try:
            validate_object(f"{NAMESPACE}.storageBlobs#blobEntry", {"blob": blob}, where=what)
        except RecordValidationError as exc:
            raise AtmosphereError(
                f"{what}: the PDS answered a malformed blob ref ({exc})"
            ) from None
        ref = BlobRef.from_dict(blob)  # type: ignore[arg-type]
        if ref.cid != cid or ref.size != len(data):
            raise AtmosphereError(f"the PDS stored the blob as {ref.cid}, but its content is {cid}")
        return ref

    def blob_url(self, did: str, cid: str) -> str:
        """The shard URL of a blob, pinned to its owner's current PDS."""
        return blob_url(did, cid, self.pds_for(did))

    def get_blob(self, did: str, cid: str, *, max_bytes: int | None = None) -> bytes:
        """The bytes of blob ``cid`` in ``did``'s repository, verified against the CID."""

        def fetch(pds: str) -> bytes:
            url = blob_url(did, cid, pds)
            src = AtBlobSource(url, max_bytes=max_bytes) if max_bytes else AtBlobSource(url)
            return src.fetch()

        try:
            return self._at_pds(did, fetch)
        except SourceError as exc:
            raise AtmosphereError(str(exc)) from exc
