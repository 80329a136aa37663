"""Turning repository commits into index changes, trusting nothing that is not verified.

For a firehose ``#commit`` (or a whole repository from ``getRepo``): the CAR is read with every
block checked against its CID; the commit object must be for the event's repository and signed by
that account's key; each ``science.alt.dataset.*`` op's record must be the block its CID names,
be found under its path in the commit's MST, be at most :data:`MAX_RECORD_BYTES`, and pass the
same lexicon and atdata checks the SDK applies when it reads a record
(:meth:`~atdata.atmosphere.records.DatasetRecord.from_record` and friends). Anything else is
dropped and counted under ``rejected.<reason>``; records are only ever stored as data, never run.
"""

import base64
import logging
from collections.abc import Mapping
from typing import Any

from ..atmosphere.records import ENTRY, LABEL, LENS, SCHEMA, record_class
from ..errors import AtdataError
from .car import Car, CarError, cid_text, decode_block, read_car
from .store import IndexedRecord, Mutation
from .verify import KeyResolver, SignatureError, mst_get, mst_items, verify_commit

__all__ = [
    "COLLECTIONS",
    "MAX_COMMIT_BYTES",
    "MAX_RECORD_BYTES",
    "Ingestor",
    "Rejected",
    "to_json",
]

log = logging.getLogger(__name__)
COLLECTIONS = frozenset({SCHEMA, ENTRY, LENS, LABEL})
NAMESPACE_PREFIX = "science.alt.dataset."
MAX_COMMIT_BYTES = 2 << 20
MAX_RECORD_BYTES = 256 << 10
MAX_OPS = 1000


class Rejected(Exception):
    """An event or record the indexer refuses; ``reason`` is the counter it goes under."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def to_json(value: Any, *, in_blob: bool = False, depth: int = 0) -> Any:
    """A decoded DAG-CBOR value in the ATProto JSON form: a blob's ``ref`` CID becomes
    ``{"$link": ...}``, other bytes ``{"$bytes": base64}``."""
    if depth > 32:
        raise Rejected("too_deep", "record nests more than 32 levels")
    if isinstance(value, Mapping):
        blob = value.get("$type") == "blob"
        return {
            str(k): to_json(v, in_blob=blob and k == "ref", depth=depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [to_json(v, depth=depth + 1) for v in value]
    if isinstance(value, bytes):
        if in_blob:
            try:
                return {"$link": cid_text(value)}
            except Exception:
                raise Rejected("invalid_record", "blob ref is not a CID") from None
        return {"$bytes": base64.b64encode(value).decode().rstrip("=")}
    return value


class Ingestor:
    """Checks commits and repositories against ``keys`` and turns them into
    :class:`~atdata.discovery.store.Mutation` s."""

    def __init__(self, keys: KeyResolver) -> None:
        self.keys = keys

    def _signed_commit(self, car: Car, commit_cid: bytes, did: str) -> dict[str, Any]:
        commit = decode_block(car, commit_cid)
        if not isinstance(commit, dict) or commit.get("did") != did:
            raise Rejected("wrong_repo", f"commit is not a commit of {did}")
        if not isinstance(commit.get("data"), bytes) or not isinstance(commit.get("rev"), str):
            raise Rejected("malformed", "commit has no data root or rev")
        try:
            verify_commit(commit, self.keys.key(did))
        except SignatureError as exc:
            raise Rejected("bad_signature", f"{did}: {exc}") from None
        return commit

    def _record(self, car: Car, did: str, path: str, cid: bytes) -> IndexedRecord:
        collection, _, rkey = path.partition("/")
        uri = f"at://{did}/{collection}/{rkey}"
        block = car.blocks.get(cid)
        if block is None:
            raise Rejected("missing_block", f"{uri}: record block not in the commit")
        if len(block) > MAX_RECORD_BYTES:
            raise Rejected("too_large", f"{uri}: record of {len(block)} bytes")
        value = to_json(decode_block(car, cid))
        if not isinstance(value, dict) or value.get("$type") != collection:
            raise Rejected("invalid_record", f"{uri}: $type is not {collection}")
        try:
            record_class(collection).from_record(value, uri=uri)
        except (AtdataError, ValueError, TypeError) as exc:
            raise Rejected("invalid_record", f"{uri}: {exc}") from None
        return IndexedRecord(uri, did, collection, rkey, cid_text(cid), value)

    def commit(self, body: Mapping[str, Any]) -> Mutation:
        """The changes of one firehose ``#commit`` body; Rejected when the whole commit is
        refused (per-record refusals are counted in the mutation and the rest applied)."""
        mutation = Mutation()
        did, blocks, ops = body.get("repo"), body.get("blocks"), body.get("ops")
        if not isinstance(did, str) or not did.startswith("did:") or len(did) > 2048:
            raise Rejected("malformed", "commit names no repository DID")
        if not isinstance(blocks, bytes) or not isinstance(ops, list) or len(ops) > MAX_OPS:
            raise Rejected("malformed", f"{did}: commit has no blocks or ops")
        wanted = [
            op
            for op in ops
            if isinstance(op, Mapping)
            and isinstance(op.get("path"), str)
            and op["path"].startswith(NAMESPACE_PREFIX)
        ]
        if not wanted:
            mutation.count("events.commit")
            return mutation
        if len(blocks) > MAX_COMMIT_BYTES:
            raise Rejected("too_large", f"{did}: commit blocks of {len(blocks)} bytes")
        try:
            car = read_car(blocks, max_bytes=MAX_COMMIT_BYTES)
            commit_cid = body.get("commit")
            if not isinstance(commit_cid, bytes):
                raise Rejected("malformed", "commit CID missing")
            commit = self._signed_commit(car, commit_cid, did)
            for op in wanted:
                self._op(car, commit, did, op, mutation)
        except CarError as exc:
            raise Rejected("bad_car", f"{did}: {exc}") from None
        mutation.repo_revs[did] = commit["rev"]
        mutation.count("events.commit")
        return mutation

    def _op(
        self, car: Car, commit: dict[str, Any], did: str, op: Mapping[str, Any], m: Mutation
    ) -> None:
        path, action = str(op["path"]), op.get("action")
        collection, _, rkey = path.partition("/")
        uri = f"at://{did}/{path}"
        if collection not in COLLECTIONS or not rkey or "/" in rkey:
            m.count("rejected.unknown_collection")
            return
        if action == "delete":
            if mst_get(car, commit["data"], path) is not None:
                m.count("rejected.not_in_commit")
                return
            m.deletes.append(uri)
            m.count("records.deleted")
            return
        cid = op.get("cid")
        if action not in ("create", "update") or not isinstance(cid, bytes):
            m.count("rejected.malformed")
            return
        try:
            if mst_get(car, commit["data"], path) != cid:
                raise Rejected("not_in_commit", f"{uri}: op CID is not the commit's")
            m.upserts.append(self._record(car, did, path, cid))
            m.count("records.indexed")
        except Rejected as exc:
            log.info("dropped %s: %s", uri, exc)
            m.count(f"rejected.{exc.reason}")

    def repository(self, did: str, car_bytes: bytes) -> Mutation:
        """A whole repository (``getRepo``'s CAR): every valid record of ours, replacing what
        the index held for ``did``."""
        mutation = Mutation(replace_repos=[did])
        try:
            car = read_car(car_bytes)
            if len(car.roots) != 1:
                raise Rejected("bad_car", f"{did}: repository CAR has {len(car.roots)} roots")
            commit = self._signed_commit(car, car.roots[0], did)
            keep = lambda key: key.split("/", 1)[0] in COLLECTIONS  # noqa: E731
            for path, cid in mst_items(car, commit["data"], keep):
                try:
                    mutation.upserts.append(self._record(car, did, path, cid))
                    mutation.count("records.indexed")
                except Rejected as exc:
                    mutation.count(f"rejected.{exc.reason}")
        except CarError as exc:
            raise Rejected("bad_car", f"{did}: {exc}") from None
        mutation.repo_revs[did] = commit["rev"]
        mutation.count("repos.backfilled")
        return mutation
