"""The exceptions atdata raises.

Every error a user can see derives from :class:`AtdataError`; errors from optional dependencies
(redis, psycopg, botocore, httpx) are translated into one of these with ``raise ... from``.
Messages name the thing that failed (shard URL and member offset, sample key, field path such as
``$.image``, record URI) and, where there is one, what to do about it. Some also derive from the
built-in exception a caller would expect (``InvalidArgumentError`` is a ``ValueError``,
``SchemaError`` a ``TypeError``, ``NotFoundError`` a ``KeyError``), so either can be caught::

    AtdataError
    ├── InvalidArgumentError   an argument is malformed or out of range (also a ValueError)
    ├── SchemaError            a value does not match its declared type, dtype or shape
    ├── ShardError             a shard is truncated, corrupt or not in the expected format
    │   └── IntegrityError     bytes do not match their recorded checksum or CID
    ├── LensError              no lens connects two types, or a lens failed
    ├── SourceError            a shard location cannot be opened or read (bad scheme, HTTP, S3)
    ├── AtdataIndexError       base of index problems
    │   ├── NotFoundError      no dataset, version, schema or lens by that name
    │   ├── ConflictError      a write would silently replace something different
    │   └── IndexUnavailableError   the index backend cannot be reached right now
    ├── StoreError             a data store could not write, read or delete shard bytes
    ├── TransformError         a derive's transform raised on a sample (on_error="raise")
    └── AtmosphereError        an ATProto request failed or a record is malformed
        └── AuthenticationError  login or token refresh failed
"""

from __future__ import annotations

from ._redact import redact

__all__ = [
    "AtdataError",
    "AtmosphereError",
    "AuthenticationError",
    "ConflictError",
    "AtdataIndexError",
    "AtdataWarning",
    "IndexUnavailableError",
    "IntegrityError",
    "InvalidArgumentError",
    "LensError",
    "NotFoundError",
    "SchemaError",
    "ShardError",
    "SourceError",
    "StoreError",
    "TransformError",
]


class AtdataError(Exception):
    """Base class of every exception raised by atdata."""


class InvalidArgumentError(AtdataError, ValueError):
    """An argument passed to atdata is malformed or out of range (an option, a size, a name).

    Also a :class:`ValueError`, so code that catches ``ValueError`` around a call keeps working.
    """


class AtdataWarning(UserWarning):
    """Warnings about data (skipped samples with ``on_error="warn"``, shards without an index)."""


class SchemaError(AtdataError, TypeError):
    """A value does not match its sample type: wrong type, dtype, shape, missing field."""

    def __init__(self, message: str, *, path: str = "$") -> None:
        super().__init__(message)
        self.path = path


class ShardError(AtdataError):
    """A shard is truncated, corrupt, or holds something other than the expected tar layout.

    The message is passed through :func:`atdata._redact.redact`: a signed shard URL's token,
    signature or password is shown as ``***``. ``shard`` keeps the URL as given.
    """

    def __init__(
        self, message: str, *, shard: str | None = None, offset: int | None = None
    ) -> None:
        where = ""
        if shard is not None:
            where = (
                f" [shard {shard}"
                + (f", member at byte {offset}" if offset is not None else "")
                + "]"
            )
        super().__init__(redact(message + where))
        self.shard = shard
        self.offset = offset


class IntegrityError(ShardError):
    """Bytes do not match the checksum or CID recorded for them."""


class LensError(AtdataError):
    """No lens connects two sample types, or a lens raised while viewing a sample."""


class SourceError(AtdataError):
    """A shard URL cannot be opened: unknown or refused scheme, network or storage failure.

    The message is passed through :func:`atdata._redact.redact`, as :class:`ShardError`'s is.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class AtdataIndexError(AtdataError):
    """Base class of index errors."""


class NotFoundError(AtdataIndexError, KeyError):
    """No dataset, version, schema, label or lens exists under the given name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ConflictError(AtdataIndexError):
    """A write would silently replace or contradict something already recorded."""


class IndexUnavailableError(AtdataIndexError):
    """The index backend (Redis, PostgreSQL, SQLite file) cannot be reached; retry later."""


class StoreError(AtdataError):
    """A data store failed to write, read, verify or delete shard bytes."""


class TransformError(AtdataError):
    """A derive's transform raised on a sample: the message names the sample's key and input
    shard, ``__cause__`` is the transform's own exception. Nothing was committed."""


class AtmosphereError(AtdataError):
    """An ATProto request failed, or a record read from the network is malformed."""


class AuthenticationError(AtmosphereError):
    """Login, session restore or token refresh against a PDS failed."""
