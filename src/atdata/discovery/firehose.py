"""Following one host's ``com.atproto.sync.subscribeRepos`` event stream into the index.

A frame is two DAG-CBOR values back to back: a header ``{op, t}`` (``op`` 1: a message of type
``t``; -1: an error, then the host closes) and the body. Each event is applied with the host's
cursor (its ``seq``) in one transaction, so a follower killed at any point resumes after the last
event it applied: nothing is lost and nothing applied twice. A ``#commit`` of a repository the
index has not seen, or whose ``since`` is not the revision the index holds (a gap), is answered
with the whole repository (``com.atproto.sync.getRepo``) instead; ``#sync`` and a ``tooBig`` commit (blocks left out) likewise.
``#identity`` drops the account's cached signing key; ``#account`` with status ``deleted``
removes its records.

Where to start: the stored cursor, whenever there is one. With no stored cursor a follower starts
at the beginning of the host's stream (cursor 0: every event the host still keeps), or, with
``from_now``, at its live head (``subscribeRepos`` without a cursor); either way the first event
applied stores a cursor, and from then on a restart resumes after it and skips nothing. A
repository first seen in the live stream is still read whole (the index never holds part of a
repository), so a repository that commits after the start shows its earlier records too; one that
stays quiet is absent until it commits or is backfilled on request (:meth:`Follower.request_backfill`).
"""

import logging
import queue
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .ingest import Ingestor, Rejected
from .store import IndexStore, Mutation

__all__ = ["Follower", "MAX_FRAME_BYTES", "MAX_REPO_BYTES"]

log = logging.getLogger(__name__)
MAX_FRAME_BYTES = 16 << 20
MAX_REPO_BYTES = 64 << 20


def _ws_url(host: str) -> str:
    if host.startswith("https://"):
        return "wss://" + host[len("https://") :].rstrip("/")
    if host.startswith("http://"):
        return "ws://" + host[len("http://") :].rstrip("/")
    raise ValueError(f"host {host!r:.100} is not an http(s) URL")


class Follower:
    """Follows ``host`` (a PDS or relay base URL) into ``store`` until :meth:`stop`."""

    def __init__(
        self, host: str, store: IndexStore, ingestor: Ingestor, *, from_now: bool = False
    ) -> None:
        self.host = host.rstrip("/")
        self.ws = _ws_url(self.host)
        self.store = store
        self.ingestor = ingestor
        self.from_now = from_now
        self._backfills: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"follow {self.host}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def run(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                self._session()
                delay = 0.2
            except Exception as exc:  # reconnect after any failure, with backoff
                log.warning("following %s: %s; reconnecting", self.host, exc)
            self.connected.clear()
            self._stop.wait(delay)
            delay = min(delay * 2, 10.0)

    def request_backfill(self, did: str) -> None:
        """Read ``did``'s whole repository into the index once this follower is connected (so
        that no commit made meanwhile is missed: one that arrives during the read is applied
        after it, or skipped when the read already holds it)."""
        self._backfills.put(did)

    def subscribe_url(self) -> str:
        """The stream's URL: after the stored cursor; with none, from the start of the host's
        stream, or at its live head with ``from_now``."""
        base = f"{self.ws}/xrpc/com.atproto.sync.subscribeRepos"
        cursor = self.store.cursor(self.host)
        if cursor is None and self.from_now:
            log.info("no stored cursor for %s: starting at its live head", self.host)
            return base
        return f"{base}?cursor={cursor or 0}"

    def _session(self) -> None:
        from websockets.exceptions import ConnectionClosedOK
        from websockets.sync.client import connect

        with connect(self.subscribe_url(), max_size=MAX_FRAME_BYTES, open_timeout=10) as ws:
            self.connected.set()
            while not self._stop.is_set():
                self._run_backfills()
                try:
                    frame = ws.recv(timeout=0.5)
                except TimeoutError:
                    continue
                except ConnectionClosedOK:
                    return
                if isinstance(frame, bytes):
                    self.handle(frame)

    def _run_backfills(self) -> None:
        while True:
            try:
                did = self._backfills.get_nowait()
            except queue.Empty:
                return
            try:
                mutation = self.backfill(did)
            except Rejected as exc:
                log.warning("backfill of %s failed: %s", did, exc)
                mutation = Mutation(counters={f"rejected.{exc.reason}": 1})
            mutation.count("repos.backfill_requested")
            self.store.apply(mutation)

    def handle(self, frame: bytes) -> None:
        """Apply one frame (with the cursor), or count it as rejected."""
        import libipld

        try:
            parts = libipld.decode_dag_cbor_multi(frame)
        except Exception:
            self.store.apply(Mutation(counters={"rejected.bad_frame": 1}))
            return
        if len(parts) != 2 or not isinstance(parts[0], dict) or not isinstance(parts[1], dict):
            self.store.apply(Mutation(counters={"rejected.bad_frame": 1}))
            return
        header, body = parts
        if header.get("op") == -1:
            raise ConnectionError(f"{self.host} sent an error: {str(body.get('error'))[:100]}")
        seq = body.get("seq")
        if not isinstance(seq, int):
            return  # #info and the like carry no sequence number
        last = self.store.cursor(self.host)
        if last is not None and seq <= last:
            return  # replayed: already applied
        kind = header.get("t")
        try:
            mutation = self._event(kind, body)
        except Rejected as exc:
            log.info("rejected %s event %s from %s: %s", kind, seq, self.host, exc)
            mutation = Mutation(counters={f"rejected.{exc.reason}": 1})
        mutation.count("events.applied")  # with the cursor: a check that none is lost or doubled
        self.store.apply(mutation, host=self.host, seq=seq)

    def _event(self, kind: Any, body: Mapping[str, Any]) -> Mutation:
        did = body.get("did") if kind != "#commit" else body.get("repo")
        if not isinstance(did, str) or not did.startswith("did:"):
            raise Rejected("malformed", f"{kind} event names no DID")
        if kind == "#commit":
            known = self.store.repo_rev(did)
            rev, since = body.get("rev"), body.get("since")
            if not isinstance(rev, str):
                raise Rejected("malformed", "commit has no rev")
            if known is not None and rev <= known:
                return Mutation(counters={"events.skipped": 1})
            if known is None or (since is not None and since != known) or body.get("tooBig"):
                return self.backfill(did)
            return self.ingestor.commit(body)
        if kind == "#sync":
            return self.backfill(did)
        if kind == "#identity":
            self.ingestor.keys.forget(did)
            return Mutation(counters={"events.identity": 1})
        if kind == "#account":
            m = Mutation(counters={"events.account": 1})
            if body.get("active") is False and body.get("status") == "deleted":
                m.replace_repos.append(did)
            return m
        return Mutation(counters={"events.other": 1})

    def backfill(self, did: str) -> Mutation:
        """The whole repository of ``did``, as a replacing mutation: from this host, else (a
        relay that serves no repositories) from the PDS its DID document names. The signature
        check makes either source as good as the other."""
        path = f"/xrpc/com.atproto.sync.getRepo?did={quote(did, safe=':')}"
        errors = []
        for source in ("host", "pds"):
            try:
                base = self.host if source == "host" else self.ingestor.keys.pds_endpoint(did)
                car = self.ingestor.keys.http.get(
                    base.rstrip("/") + path,
                    max_bytes=MAX_REPO_BYTES,
                    what=f"fetching the repository of {did}",
                )
            except Exception as exc:
                errors.append(str(exc))
                continue
            return self.ingestor.repository(did, car)
        raise Rejected("backfill_failed", f"{did}: " + "; ".join(errors))
