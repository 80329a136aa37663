"""Discovery across the atmosphere: an indexer that follows PDS event streams
(``com.atproto.sync.subscribeRepos``) and keeps every repository's ``science.alt.dataset.*``
records, verified, in a searchable database, and the client that searches it.

* :class:`DiscoveryClient` -- search an indexer (``atdata search`` on the CLI).
* :class:`~atdata.discovery.service.Indexer` -- run one (``atdata indexer``; extra
  ``atdata[indexer]``).

Layers inside: ``car`` (CAR files, CIDs checked) -> ``verify`` (signatures, MST) -> ``store``
(the database) -> ``ingest`` (commits to index changes) -> ``firehose`` (following a host) ->
``server`` (XRPC queries) -> ``service``; ``client`` stands apart.
"""

from .client import INDEXER_URL_ENV, DatasetResult, DiscoveryClient, LensResult, SearchPage

__all__ = ["INDEXER_URL_ENV", "DatasetResult", "DiscoveryClient", "LensResult", "SearchPage"]
