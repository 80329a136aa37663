"""Searching an indexer from Python: :class:`DiscoveryClient`.

Requests go through the project's one HTTP transport (:mod:`atdata.net.transport`). Each dataset
result names its ``at://`` entry URI and can be handed to :func:`atdata.load_dataset` as it is
(it is path-like) or by ``result.uri``.
"""

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from ..errors import AtdataError
from ..net.transport import send, shared_client

__all__ = ["INDEXER_URL_ENV", "DatasetResult", "DiscoveryClient", "LensResult", "SearchPage"]

INDEXER_URL_ENV = "ATDATA_INDEXER_URL"
_MAX_ANSWER = 16 << 20


@dataclass(frozen=True)
class DatasetResult:
    """One dataset entry an indexer found; ``os.fspath(result)`` is its ``at://`` URI."""

    uri: str
    name: str
    did: str
    cid: str
    schema_ref: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    license: str | None = None
    record: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __fspath__(self) -> str:
        return self.uri

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "DatasetResult":
        return cls(
            uri=str(value["uri"]),
            name=str(value.get("name", "")),
            did=str(value.get("did", "")),
            cid=str(value.get("cid", "")),
            schema_ref=value.get("schemaRef"),
            description=value.get("description"),
            tags=tuple(value.get("tags") or ()),
            license=value.get("license"),
            record=dict(value),
        )


@dataclass(frozen=True)
class LensResult:
    """One lens an indexer found."""

    uri: str
    name: str
    source_schema: str
    target_schema: str
    record: Mapping[str, Any] = field(default_factory=dict, repr=False)


class SearchPage(list[Any]):
    """One page of results; ``cursor`` asks for the next (None: this was the last)."""

    cursor: str | None = None


class DiscoveryClient:
    """Queries the indexer at ``url`` (default ``$ATDATA_INDEXER_URL``)."""

    def __init__(self, url: str | None = None, *, timeout: float = 30.0) -> None:
        url = url or os.environ.get(INDEXER_URL_ENV)
        if not url:
            raise AtdataError(f"no indexer URL: pass one or set ${INDEXER_URL_ENV}")
        if not url.startswith(("http://", "https://")):
            raise AtdataError(f"indexer URL {url!r:.100} is not http(s)")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"DiscoveryClient({self.url!r})"

    def query(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON answer of XRPC query ``method`` with ``params`` (None values left out)."""
        pairs = [(k, v) for k, v in params.items() if v is not None and v != []]
        url = f"{self.url}/xrpc/{method}?{urlencode(pairs, doseq=True)}"
        client = shared_client(self.timeout, extra="atmosphere")
        response = send(client, "GET", url, stream=False)
        body = response.content
        if len(body) > _MAX_ANSWER:
            raise AtdataError(f"{method}: the indexer's answer is over {_MAX_ANSWER} bytes")
        try:
            data = json.loads(body)
        except ValueError:
            raise AtdataError(f"{method}: the indexer answered non-JSON") from None
        if response.status_code != 200 or not isinstance(data, dict):
            message = data.get("message") if isinstance(data, dict) else None
            raise AtdataError(f"{method}: indexer answered {response.status_code}: {message}")
        return data

    def search_datasets(
        self,
        q: str | None = None,
        *,
        tags: Iterable[str] = (),
        schema: str | None = None,
        license: str | None = None,
        repo: str | None = None,
        min_bytes: int | None = None,
        max_bytes: int | None = None,
        limit: int = 25,
        cursor: str | None = None,
    ) -> SearchPage:
        """Dataset entries matching every filter given (``schema``: a schema record's at://
        URI, CID or name); one page of :class:`DatasetResult`."""
        data = self.query(
            "science.alt.dataset.searchDatasets",
            {
                "q": q,
                "tags": list(tags),
                "schema": schema,
                "license": license,
                "repo": repo,
                "minBytes": min_bytes,
                "maxBytes": max_bytes,
                "limit": limit,
                "cursor": cursor,
            },
        )
        page = SearchPage(DatasetResult.from_json(e) for e in data.get("entries", []))
        page.cursor = data.get("cursor")
        return page

    def search_lenses(
        self,
        *,
        source_schema: str | None = None,
        target_schema: str | None = None,
        limit: int = 25,
        cursor: str | None = None,
    ) -> SearchPage:
        """Lenses leading from ``source_schema`` to ``target_schema`` (at:// URI, CID or name;
        either may be left out); one page of :class:`LensResult`."""
        data = self.query(
            "science.alt.dataset.searchLenses",
            {
                "sourceSchema": source_schema,
                "targetSchema": target_schema,
                "limit": limit,
                "cursor": cursor,
            },
        )
        page = SearchPage(
            LensResult(
                uri=str(e["uri"]),
                name=str(e.get("name", "")),
                source_schema=str(e.get("sourceSchema", "")),
                target_schema=str(e.get("targetSchema", "")),
                record=dict(e),
            )
            for e in data.get("lenses", [])
        )
        page.cursor = data.get("cursor")
        return page

    def stats(self) -> dict[str, Any]:
        """The indexer's counters, cursors and record count."""
        return self.query("science.alt.dataset.describeService", {})
