"""The network layer: identifiers, deadlines and the one HTTP transport every remote path uses.

Nothing here imports another atdata package but :mod:`atdata.errors` and the private helpers
(``_optional``, ``_redact``): sources, the atmosphere client and whatever comes next sit above it.
"""

__all__: list[str] = []
