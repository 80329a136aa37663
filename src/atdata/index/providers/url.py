"""Open an index provider from a URL or a provider name, as ``Index`` and ``atdata diagnose`` do.

=================================================  ==========================================
URL                                                provider
=================================================  ==========================================
``sqlite:///abs/path/index.db``                    SQLite file at ``/abs/path/index.db``
``sqlite:relative/index.db``, ``sqlite://~/i.db``  SQLite file, relative or under ``~``
``redis://[user:pass@]host:6379/0?prefix=atdata:`` Redis (``rediss://`` for TLS)
``postgresql://user:pass@host:5432/db?schema=x``   PostgreSQL (``postgres://`` too)
=================================================  ==========================================

Query parameters the provider understands are taken out of the URL before the rest goes to the
driver: ``timeout`` for every provider; ``prefix``, ``lock_ttl``, ``connect_timeout`` for Redis;
``schema``, ``min_size``, ``max_size``, ``connect_timeout`` for PostgreSQL (other parameters,
such as ``sslmode``, go to libpq or redis-py). Keyword options given to :func:`provider_from_url`
win over the URL's. The environment variable :data:`INDEX_URL_ENV` (``ATDATA_INDEX_URL``) names
the index when nothing else does.
"""

import os
import urllib.parse
from typing import Any

from ..._redact import redact
from ...errors import AtdataIndexError
from .base import Provider

__all__ = ["INDEX_URL_ENV", "PROVIDER_NAMES", "open_provider", "provider_from_url"]

INDEX_URL_ENV = "ATDATA_INDEX_URL"
PROVIDER_NAMES = ("sqlite", "redis", "postgres")

_SCHEMES = {
    "sqlite": "sqlite",
    "redis": "redis",
    "rediss": "redis",
    "postgresql": "postgres",
    "postgres": "postgres",
}
_OPTIONS: dict[str, dict[str, type]] = {
    "sqlite": {"timeout": float},
    "redis": {"prefix": str, "timeout": float, "connect_timeout": float, "lock_ttl": float},
    "postgres": {
        "schema": str,
        "timeout": float,
        "connect_timeout": float,
        "min_size": int,
        "max_size": int,
    },
}


def provider_from_url(url: str, **options: Any) -> Provider:
    """Open the provider a URL names (see the module docstring for the forms).

    >>> import tempfile, os
    >>> p = provider_from_url("sqlite://" + os.path.join(tempfile.mkdtemp(), "index.db"))
    >>> p.kind
    'sqlite'
    >>> p.close()
    """
    if not isinstance(url, str) or ":" not in url:
        raise AtdataIndexError(
            f"bad index URL {redact(str(url))!r}: expected sqlite:///path, redis://host:port/db or "
            "postgresql://user@host/db"
        )
    scheme = url.split(":", 1)[0].lower()
    name = _SCHEMES.get(scheme)
    if name is None:
        raise AtdataIndexError(
            f"unknown index URL scheme {scheme!r} in {redact(url)!r}: use one of "
            + ", ".join(f"{s}://" for s in _SCHEMES)
        )
    if name == "sqlite":
        path, params = _sqlite_path(url)
        return _open("sqlite", path, {**params, **options}, url)
    target, params = _split_options(url, _OPTIONS[name])
    return _open(name, target, {**params, **options}, url)


def open_provider(
    provider: str | None = None,
    *,
    url: str | None = None,
    dsn: str | None = None,
    path: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Provider:
    """Open a provider by name, the way ``Index(provider=..., url=/dsn=/path=...)`` is spelled.

    ``open_provider("sqlite", path=...)``, ``open_provider("redis", url="redis://...",
    prefix="team:")``, ``open_provider("postgres", dsn="postgresql://...")``; with no name, the
    ``url`` decides, then ``ATDATA_INDEX_URL``. Raises AtdataIndexError when nothing names an
    index (the caller then picks its default).
    """
    if provider is None:
        given = url or dsn or os.environ.get(INDEX_URL_ENV)
        if path is not None:
            return _open("sqlite", os.fspath(path), options, os.fspath(path))
        if not given:
            raise AtdataIndexError(
                f"no index given: pass provider=/url=/path=, or set {INDEX_URL_ENV}"
            )
        return provider_from_url(given, **options)
    name = {"postgresql": "postgres", "sqlite3": "sqlite"}.get(provider.lower(), provider.lower())
    if name not in PROVIDER_NAMES:
        raise AtdataIndexError(
            f"unknown index provider {provider!r}: use one of {', '.join(PROVIDER_NAMES)}"
        )
    if name == "sqlite":
        if path is not None:
            return _open("sqlite", os.fspath(path), options, os.fspath(path))
        if url is None:
            raise AtdataIndexError("the sqlite provider needs path= (or url='sqlite:///...')")
        return _require_scheme(url, "sqlite", options)
    target = url or dsn
    if target is None:
        arg = "dsn" if name == "postgres" else "url"
        raise AtdataIndexError(f"the {name} provider needs {arg}= (a {name} URL)")
    if name == "redis" and target.lower().startswith("unix:"):  # a socket: redis-py's own form
        params_target, params = _split_options(target, _OPTIONS["redis"])
        return _open("redis", params_target, {**params, **options}, target)
    return _require_scheme(target, name, options)


# -- internals ---------------------------------------------------------------------------------
def _require_scheme(url: str, name: str, options: dict[str, Any]) -> Provider:
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if _SCHEMES.get(scheme) != name:
        raise AtdataIndexError(f"{redact(url)!r} is not a {name} URL")
    return provider_from_url(url, **options)


def _open(name: str, target: str, options: dict[str, Any], url: str) -> Provider:
    try:
        if name == "sqlite":
            from .sqlite import SQLiteProvider

            return SQLiteProvider(target, **options)
        if name == "redis":
            from .redis import RedisProvider

            return RedisProvider(target, **options)
        from .postgres import PostgresProvider

        return PostgresProvider(target, **options)
    except TypeError as exc:  # an option this provider does not take
        raise AtdataIndexError(f"bad option for the {name} index at {redact(url)}: {exc}") from exc


def _sqlite_path(url: str) -> tuple[str, dict[str, Any]]:
    rest = url.split(":", 1)[1]
    query = ""
    if "?" in rest:
        rest, query = rest.split("?", 1)
    if rest.startswith("//"):
        rest = rest[2:]  # an empty authority: sqlite:///abs -> /abs, sqlite://rel -> rel
    if rest.startswith("//"):
        rest = "/" + rest.lstrip("/")  # sqlite:////abs (the SQLAlchemy spelling) -> /abs
    path = urllib.parse.unquote(rest)
    if not path:
        raise AtdataIndexError(
            f"the index URL {redact(url)!r} names no file: use sqlite:///path/index.db"
        )
    return path, _parse_params(urllib.parse.parse_qsl(query), _OPTIONS["sqlite"], url, strict=True)


def _split_options(url: str, known: dict[str, type]) -> tuple[str, dict[str, Any]]:
    """Take the provider's own query parameters out of ``url``; the rest stays for the driver."""
    parts = urllib.parse.urlsplit(url)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    ours = [(k, v) for k, v in pairs if k in known]
    theirs = [(k, v) for k, v in pairs if k not in known]
    rest = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(theirs)))
    return rest, _parse_params(ours, known, url)


def _parse_params(
    pairs: list[tuple[str, str]], known: dict[str, type], url: str, *, strict: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key not in known:
            if strict:
                raise AtdataIndexError(
                    f"unknown parameter {key!r} in the index URL {redact(url)!r}; "
                    f"known: {', '.join(sorted(known))}"
                )
            continue
        try:
            out[key] = known[key](value)
        except ValueError:
            raise AtdataIndexError(
                f"bad value {value!r} for {key!r} in the index URL {redact(url)!r}"
            ) from None
    return out
