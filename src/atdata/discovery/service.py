"""The indexer as one process: a :class:`~atdata.discovery.firehose.Follower` per host and the
XRPC server, on one index database."""

import logging
import threading
from dataclasses import dataclass, field

from .._optional import require
from .firehose import Follower
from .ingest import Ingestor
from .server import make_server
from .store import IndexStore
from .verify import KeyResolver

__all__ = ["Indexer"]

log = logging.getLogger(__name__)


@dataclass
class Indexer:
    """Follows ``hosts`` into the database at ``db`` and serves it on ``listen``
    (``host:port``; port 0 picks a free one). ``plc_urls``: where DID documents come from.
    ``from_now``: a host with no stored cursor is followed from its live head instead of from
    the start of its stream (a stored cursor always wins). ``backfill``: DIDs whose whole
    repositories are read in once the first host's stream is open."""

    hosts: list[str]
    db: str
    plc_urls: list[str]
    listen: str = "127.0.0.1:0"
    prefix: str = "idx_"
    from_now: bool = False
    backfill: list[str] = field(default_factory=list)
    followers: list[Follower] = field(default_factory=list)

    def start(self) -> str:
        """Start following and serving; the base URL it serves on."""
        for module in ("websockets", "cryptography"):
            require(module, "indexer")
        if self.backfill and not self.hosts:
            raise ValueError("backfill needs a host to follow")
        for did in self.backfill:
            if not did.startswith("did:") or len(did) > 2048:
                raise ValueError(f"backfill: {did!r:.100} is not a DID")
        host, _, port = self.listen.rpartition(":")
        self.store = IndexStore(self.db, prefix=self.prefix)
        self.keys = KeyResolver(self.plc_urls)
        ingestor = Ingestor(self.keys)
        self.followers = [
            Follower(h, self.store, ingestor, from_now=self.from_now) for h in self.hosts
        ]
        for did in self.backfill:
            self.followers[0].request_backfill(did)
        for follower in self.followers:
            follower.start()
        self.server = make_server(self.store, host or "127.0.0.1", int(port or 0))
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        bound_port = self.server.server_address[1]
        self.url = f"http://{host or '127.0.0.1'}:{bound_port}"
        return self.url

    def stop(self) -> None:
        for follower in self.followers:
            follower.stop()
        self.server.shutdown()
        self.server.server_close()
        self.keys.close()
        self.store.close()
