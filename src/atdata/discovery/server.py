"""The indexer's XRPC queries over HTTP (GET only, JSON answers):

* ``science.alt.dataset.searchDatasets``: ``q`` (words of name and description), ``tags``
  (repeated; all must match; with ``q`` results come by relevance, see
  :meth:`~atdata.discovery.store.IndexStore.search_datasets`), ``schemaRef`` or ``schema`` (a schema record's at:// URI, CID or
  name), ``license``, ``repo`` (DID), ``minBytes``/``maxBytes``, ``limit`` (1-100), ``cursor``;
  answers ``{"entries": [...], "cursor"?}``, each entry the record's fields plus ``uri``,
  ``cid`` and ``did`` (the shape atdata 0.7's client reads).
* ``science.alt.dataset.searchLenses``: ``sourceSchema``, ``targetSchema`` (URI, CID or name),
  ``limit``, ``cursor``; answers ``{"lenses": [...], "cursor"?}``.
* ``science.alt.dataset.describeService``: counters, cursors and record counts.

Bound to 127.0.0.1 unless told otherwise.
"""

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .store import BadCursor, IndexStore

__all__ = ["SEARCH_DATASETS", "SEARCH_LENSES", "DESCRIBE", "make_server"]

log = logging.getLogger(__name__)
SEARCH_DATASETS = "science.alt.dataset.searchDatasets"
SEARCH_LENSES = "science.alt.dataset.searchLenses"
DESCRIBE = "science.alt.dataset.describeService"
_MAX_QUERY = 4096


class _BadRequest(ValueError):
    pass


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values[0]) > 1024:
        raise _BadRequest(f"{name} is too long")
    return values[0]


def _int(params: dict[str, list[str]], name: str, default: int | None = None) -> int | None:
    value = _one(params, name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise _BadRequest(f"{name} must be an integer") from None


def answer(store: IndexStore, path: str, query: str) -> dict[str, Any]:
    """The JSON answer to ``GET /xrpc/<path>?<query>``; _BadRequest or KeyError (unknown)."""
    params = parse_qs(query, keep_blank_values=False)
    limit = _int(params, "limit", 25) or 25
    cursor = _one(params, "cursor")
    if path == SEARCH_DATASETS:
        tags = params.get("tags", []) + params.get("tag", [])
        entries, nxt = store.search_datasets(
            q=_one(params, "q"),
            tags=[t[:128] for t in tags[:8]],
            schema=_one(params, "schemaRef") or _one(params, "schema"),
            license=_one(params, "license"),
            repo=_one(params, "repo"),
            min_bytes=_int(params, "minBytes"),
            max_bytes=_int(params, "maxBytes"),
            limit=limit,
            cursor=cursor,
        )
        return {"entries": entries, **({"cursor": nxt} if nxt else {})}
    if path == SEARCH_LENSES:
        lenses, nxt = store.search_lenses(
            source_schema=_one(params, "sourceSchema"),
            target_schema=_one(params, "targetSchema"),
            limit=limit,
            cursor=cursor,
        )
        return {"lenses": lenses, **({"cursor": nxt} if nxt else {})}
    if path == DESCRIBE:
        return {
            "counters": store.counters(),
            "cursors": store.cursors(),
            "records": store.count(),
        }
    raise KeyError(path)


def make_server(store: IndexStore, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server answering the queries above from ``store`` (not started)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "atdata-indexer"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if len(self.path) > _MAX_QUERY:
                return self._send(414, {"error": "InvalidRequest", "message": "URL too long"})
            parts = urlsplit(self.path)
            if not parts.path.startswith("/xrpc/"):
                return self._send(404, {"error": "NotFound", "message": "not an XRPC path"})
            try:
                body = answer(store, parts.path[len("/xrpc/") :], parts.query)
            except (_BadRequest, BadCursor) as exc:
                return self._send(400, {"error": "InvalidRequest", "message": str(exc)})
            except KeyError:
                return self._send(501, {"error": "MethodNotImplemented", "message": parts.path})
            except Exception:
                log.exception("query %s failed", parts.path)
                return self._send(500, {"error": "InternalServerError", "message": "query failed"})
            self._send(200, body)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
