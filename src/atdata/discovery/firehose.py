"""Following one host's ``com.atproto.sync.subscribeRepos`` event stream into the index.

A frame is two DAG-CBOR values back to back: a header ``{op, t}`` (``op`` 1: a message of type
``t``; -1: an error, then the host closes) and the body. Each event is applied with the host's
cursor (its ``seq``) in one transaction, so a follower killed at any point resumes after the last
event it applied: nothing is lost and nothing applied twice. A ``#commit`` of a repository the
index has not seen, or whose ``since`` is not the revision the index holds (a gap), is answered
with the whole repository (``com.atproto.sync.getRepo``) instead; ``#sync`` and a ``tooBig`` commit (blocks left out) likewise.
``#identity`` drops the account's cached signing key; ``#account`` with status ``deleted``
removes its records.
"""

import logging
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

    def __init__(self, host: str, store: IndexStore, ingestor: Ingestor) -> None:
        self.host = host.rstrip("/")
        self.ws = _ws_url(self.host)
        self.store = store
        self.ingestor = ingestor
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

    def _session(self) -> None:
        from websockets.exceptions import ConnectionClosedOK
        from websockets.sync.client import connect

        cursor = self.store.cursor(self.host)
        url = f"{self.ws}/xrpc/com.atproto.sync.subscribeRepos?cursor={cursor or 0}"
        with connect(url, max_size=MAX_FRAME_BYTES, open_timeout=10) as ws:
            self.connected.set()
            while not self._stop.is_set():
                try:
                    frame = ws.recv(timeout=0.5)
                except TimeoutError:
                    continue
                except ConnectionClosedOK:
                    return
                if isinstance(frame, bytes):
                    self.handle(frame)

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
