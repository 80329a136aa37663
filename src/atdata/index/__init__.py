"""The index: datasets, schemas, labels and lenses, in repositories of a provider and a store."""

from .entries import DatasetEntry, LabelEntry, LensEntry, SchemaEntry
from .facade import Index
from .providers import (
    PostgresProvider,
    Provider,
    RedisProvider,
    SQLiteProvider,
    Transaction,
    open_provider,
    provider_from_url,
)
from .repository import Repository, atdata_home, default_repository

__all__ = [
    "DatasetEntry",
    "Index",
    "LabelEntry",
    "LensEntry",
    "PostgresProvider",
    "Provider",
    "RedisProvider",
    "Repository",
    "SQLiteProvider",
    "SchemaEntry",
    "Transaction",
    "atdata_home",
    "default_repository",
    "open_provider",
    "provider_from_url",
]
