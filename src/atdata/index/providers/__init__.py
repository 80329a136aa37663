"""Index providers: where index records live. SQLite is built in; Redis and PostgreSQL are extras."""

from .base import Provider, Record, Transaction
from .postgres import PostgresProvider
from .redis import RedisProvider
from .sqlite import SQLiteProvider
from .url import open_provider, provider_from_url

__all__ = [
    "PostgresProvider",
    "Provider",
    "Record",
    "RedisProvider",
    "SQLiteProvider",
    "Transaction",
    "open_provider",
    "provider_from_url",
]
